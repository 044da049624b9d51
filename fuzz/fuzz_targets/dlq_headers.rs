//! Dead-letter headers: an AMQP field table in wire encoding (or, for the committed
//! seeds, lapin's JSON form of one) parsed as the broker client parses it, then read with
//! the header readers `dlq list` and the worker use. A table that parses re-encodes to
//! one that parses the same.
#![no_main]

use lapin::types::generation::gen_field_table;
use lapin::types::parsing::parse_field_table;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use libfuzzer_sys::fuzz_target;
use payout_worker::broker::headers::{count, text};

fn encode(t: &FieldTable) -> Vec<u8> {
    gen_field_table::<Vec<u8>>(t)(Vec::new().into())
        .expect("a parsed table encodes")
        .write
}

fuzz_target!(|data: &[u8]| {
    let wire = match serde_json::from_slice::<FieldTable>(data) {
        Ok(t) => encode(&t),
        Err(_) => data.to_vec(),
    };
    let Ok((_, table)) = parse_field_table(wire.as_slice()) else {
        return;
    };
    let again = parse_field_table(encode(&table).as_slice())
        .expect("a re-encoded table parses")
        .1;
    assert_eq!(again, table, "a table changes when re-encoded");
    let props = BasicProperties::default().with_headers(table.clone());
    for name in table.inner().keys() {
        let _ = text(&props, name.as_str());
        let _ = count(&props, name.as_str());
    }
});

//! The seed formats of `tests/fuzz-corpus/` (see `src/fuzz.rs`), read leniently: a
//! fuzzer's input that does not fit is still run through the parsers as a bare body.

/// An HTTP answer: `HTTP/1.1 <status> ...`, `Name: value` lines, an empty line, the body.
pub struct Capture<'a> {
    pub status: u16,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> Capture<'a> {
    pub fn read(data: &'a [u8]) -> Self {
        let parsed = data
            .windows(2)
            .position(|w| w == b"\n\n")
            .and_then(|split| {
                let head = std::str::from_utf8(&data[..split]).ok()?;
                let mut lines = head.lines();
                let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
                let headers = lines.filter_map(|l| l.split_once(": ")).collect();
                Some(Self {
                    status,
                    headers,
                    body: &data[split + 2..],
                })
            });
        parsed.unwrap_or(Self {
            status: 200,
            headers: Vec::new(),
            body: data,
        })
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

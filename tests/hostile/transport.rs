//! Hostile transport: headers, sizes and properties a publisher controls.

#[allow(unused_imports)]
use super::common::*;

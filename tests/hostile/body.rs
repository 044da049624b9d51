//! Hostile bodies: authentic commands whose content is hostile or malformed.

#[allow(unused_imports)]
use super::common::*;

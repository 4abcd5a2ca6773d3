//! Helpers shared by the integration-test crates. Each test crate uses a different subset,
//! so items unused in one crate are expected.
#![allow(dead_code)]

pub mod edge;
pub mod origin;

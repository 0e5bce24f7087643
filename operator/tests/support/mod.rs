//! Shared by the operator's test binaries (`mock_api`, `mock_day_two`, `packaging`): each uses a
//! part of it.
#![allow(dead_code)]

pub mod fake_api;
pub mod reconcile;

//! The ACD as the API sees it: `crate::call::AcdHandle` (set an agent's
//! state, read the wallboard snapshot).

pub use crate::call::{AcdHandle, StateRequest};

//! The Charla client: network thread, trust on first use, the Slint window and headless mode.

pub mod config;
pub mod glyphs;
pub mod gui;
pub mod headless;
pub mod heap;
pub mod host;
pub mod identity;
#[cfg(test)]
#[path = "../link_order.rs"]
mod link_order;
pub mod net;
pub mod notify;
pub mod present;
pub mod ring_model;
pub mod slint_messages;
pub mod typing;
pub mod words;

slint::include_modules!();

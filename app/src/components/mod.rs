//! Pieces shared by pages.

pub mod event_timeline;
pub mod nav;
pub mod order_form;
pub mod status_badge;

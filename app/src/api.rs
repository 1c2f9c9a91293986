//! Server functions of the UI and the service trait they call.
//!
//! Each server function is a one-liner: it looks up the [`OrdersApi`] implementation that the
//! server binary provides as context and calls it. The trait exists only with the `ssr`
//! feature, so the browser bundle carries nothing of the server.

use crate::dto::{FieldErrorDto, ItemInput, OrderDetailDto, OrderDto, OrderPageDto};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};
use std::fmt;

/// Errors the UI can show. Serialised as JSON, also through the no-JavaScript form redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UiError {
    /// The form has problems; each is shown next to its field.
    Invalid(Vec<FieldErrorDto>),
    NotFound,
    /// Refused for a reason the page shows (the order changed meanwhile or is cancelled,
    /// …): the JSON API's status, code and message for the same error.
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// Temporarily overloaded: try again.
    Unavailable,
    /// Something failed on the server; details are in the server log.
    Internal,
    /// The server could not read the call's arguments (a malformed or incomplete body): the
    /// caller's fault, answered with 400 and without the decoder's words.
    Malformed,
    /// The request did not reach the server or its answer was unreadable.
    Transport(String),
}

impl fmt::Display for UiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UiError::Invalid(e) => write!(f, "{} field(s) need attention", e.len()),
            UiError::NotFound => f.write_str("not found"),
            UiError::Rejected { message, .. } => f.write_str(message),
            UiError::Unavailable => f.write_str("the server is busy, please try again"),
            UiError::Internal => f.write_str("something went wrong on the server"),
            UiError::Malformed => f.write_str("the request could not be read"),
            UiError::Transport(m) => write!(f, "request failed: {m}"),
        }
    }
}

impl FromServerFnError for UiError {
    type Encoder = JsonEncoding;

    /// On the server: arguments that could not be decoded are the caller's fault (400,
    /// `Malformed`); anything else the framework reports is `Internal` (500, no detail sent).
    /// In the browser: the call failed on its way (`Transport`).
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        #[cfg(feature = "ssr")]
        {
            let error = match value {
                ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => UiError::Malformed,
                _ => UiError::Internal,
            };
            with_status(error)
        }
        #[cfg(not(feature = "ssr"))]
        UiError::Transport(value.to_string())
    }
}

/// What the UI needs from the server; implemented by the server binary over its store.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait OrdersApi: Send + Sync + 'static {
    async fn list_orders(&self, cursor: Option<String>) -> Result<OrderPageDto, UiError>;
    /// The order with the page of its events below `cursor` (the newest when `None`).
    async fn order_detail(
        &self,
        id: String,
        cursor: Option<String>,
    ) -> Result<Option<OrderDetailDto>, UiError>;
    async fn create_order(
        &self,
        customer_id: String,
        items: Vec<ItemInput>,
    ) -> Result<OrderDto, UiError>;
    /// A fresh customer id to prefill the form with.
    fn suggest_customer_id(&self) -> String;
}

impl UiError {
    /// The HTTP status that fits this error.
    #[cfg(feature = "ssr")]
    fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            UiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UiError::NotFound => StatusCode::NOT_FOUND,
            UiError::Rejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            UiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::Malformed | UiError::Transport(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The server's [`OrdersApi`], provided as context by the server binary.
#[cfg(feature = "ssr")]
fn orders_api() -> Result<std::sync::Arc<dyn OrdersApi>, UiError> {
    use_context::<std::sync::Arc<dyn OrdersApi>>().ok_or(UiError::Internal)
}

/// Gives an error its proper status (leptos would answer 500). Plain HTML form posts keep the
/// redirect back to the form, which carries the error in its URL.
#[cfg(feature = "ssr")]
fn with_status(error: UiError) -> UiError {
    let html_form = use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    });
    if !html_form && let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(error.status());
    }
    error
}

/// One page of orders, newest first.
#[server(prefix = "/fn", endpoint = "list_orders")]
pub async fn list_orders(cursor: Option<String>) -> Result<OrderPageDto, UiError> {
    let api = orders_api().map_err(with_status)?;
    api.list_orders(cursor).await.map_err(with_status)
}

/// One order with a page of its events, newest first.
#[server(prefix = "/fn", endpoint = "order_detail")]
pub async fn order_detail(
    id: String,
    cursor: Option<String>,
) -> Result<Option<OrderDetailDto>, UiError> {
    let api = orders_api().map_err(with_status)?;
    api.order_detail(id, cursor).await.map_err(with_status)
}

/// A customer id for the create form.
#[server(prefix = "/fn", endpoint = "suggest_customer_id")]
pub async fn suggest_customer_id() -> Result<String, UiError> {
    Ok(orders_api().map_err(with_status)?.suggest_customer_id())
}

/// Creates an order from the form and sends the browser to its page (also without JavaScript).
#[server(prefix = "/fn", endpoint = "create_order")]
pub async fn create_order(customer_id: String, items: Vec<ItemInput>) -> Result<OrderDto, UiError> {
    let api = orders_api().map_err(with_status)?;
    let order = api
        .create_order(customer_id, items)
        .await
        .map_err(with_status)?;
    leptos_axum::redirect(&format!("/orders/{}", order.id));
    Ok(order)
}

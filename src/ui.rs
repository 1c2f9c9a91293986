//! The server side of the UI's server functions: implements the UI crate's `OrdersApi` over
//! the store, turning form text into domain values and store errors into what the UI shows.

use crate::domain::{NewOrder, OrderId, RawItem, TraceContext, ValidationErrors};
use crate::store::{Command, EventPage, OrderCursor, OrderStore, OutboxLog, StoreError};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::spans::Spans;
use crate::views::{self, EventPaths};
use app::api::{OrdersApi, UiError};
use app::dto::{FieldErrorDto, ItemInput, OrderDetailDto, OrderDto, OrderPageDto};
use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use std::sync::Arc;
use uuid::Uuid;

/// Orders shown per page in the UI.
const UI_PAGE: u32 = 20;

/// Whether a page request's headers carry a console session.
pub type SignedIn = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

pub struct UiBridge {
    orders: Arc<dyn OrderStore>,
    /// Where the order page finds its events' deliveries.
    log: Arc<dyn OutboxLog>,
    /// Counts the orders created through the pages.
    metrics: Arc<Metrics>,
    /// Records their commits as spans, when spans are exported.
    spans: Arc<Spans>,
    /// Where the order page learns where events went, for operators signed in.
    paths: EventPaths,
    signed_in: SignedIn,
}

impl UiBridge {
    pub fn new(
        orders: Arc<dyn OrderStore>,
        log: Arc<dyn OutboxLog>,
        metrics: Arc<Metrics>,
        spans: Arc<Spans>,
        paths: EventPaths,
        signed_in: SignedIn,
    ) -> Self {
        Self {
            orders,
            log,
            metrics,
            spans,
            paths,
            signed_in,
        }
    }

    /// Whether the page's request comes from an operator signed in to the console.
    fn operator(&self) -> bool {
        leptos::prelude::use_context::<axum::http::request::Parts>()
            .is_some_and(|parts| (self.signed_in)(&parts.headers))
    }
}

/// A store error as the pages show it: the same status, code and message as the JSON API.
fn ui_error(e: StoreError) -> UiError {
    let problem = views::problem(e);
    match problem.status {
        StatusCode::NOT_FOUND => UiError::NotFound,
        StatusCode::SERVICE_UNAVAILABLE => UiError::Unavailable,
        StatusCode::INTERNAL_SERVER_ERROR => {
            let cause = problem.cause.unwrap_or_default();
            tracing::error!(%cause, "server function failed");
            UiError::Internal
        }
        status => UiError::Rejected {
            status: status.as_u16(),
            code: problem.code.to_string(),
            message: problem.message,
        },
    }
}

/// `12`, `12.5` or `12.50` (major units) → cents. Anything else is an error message.
fn parse_price(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let invalid = || "must be an amount like 12.50".to_string();
    if text.is_empty() {
        return Err("is required".into());
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) || fraction.len() > 2 {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let cents: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(|| "is too large".to_string())
}

/// Form rows → raw items plus the errors of fields that are not even numbers. Unparseable
/// numbers are replaced by valid placeholders so the domain still checks the other fields.
fn raw_items(items: &[ItemInput]) -> (Vec<RawItem>, ValidationErrors) {
    let mut errors = ValidationErrors::default();
    let raw = items
        .iter()
        .enumerate()
        .map(|(i, item)| RawItem {
            sku: item.sku.trim().to_string(),
            quantity: item.quantity.trim().parse().unwrap_or_else(|_| {
                errors.add(format!("items[{i}].quantity"), "must be a whole number");
                1
            }),
            unit_price_cents: parse_price(&item.unit_price).unwrap_or_else(|m| {
                errors.add(format!("items[{i}].unit_price"), m);
                0
            }),
        })
        .collect();
    (raw, errors)
}

/// Domain errors name `unit_price_cents`; the form field is `unit_price` in major units.
fn form_field_errors(form: ValidationErrors, domain: ValidationErrors) -> Vec<FieldErrorDto> {
    let domain = domain
        .errors()
        .iter()
        .map(|e| match e.field.strip_suffix("unit_price_cents") {
            Some(prefix) => FieldErrorDto {
                field: format!("{prefix}unit_price"),
                message: "must be between 0.00 and 1000000.00".into(),
            },
            None => FieldErrorDto {
                field: e.field.clone(),
                message: e.message.clone(),
            },
        });
    let mut all: Vec<FieldErrorDto> = form
        .errors()
        .iter()
        .map(|e| FieldErrorDto {
            field: e.field.clone(),
            message: e.message.clone(),
        })
        .chain(domain)
        .collect();
    all.sort_by_key(|e| form_position(&e.field));
    all
}

/// Where a field sits in the form, top to bottom: customer, item rows in order, the item list.
fn form_position(field: &str) -> (usize, usize, usize) {
    let Some(rest) = field.strip_prefix("items[") else {
        return if field == "items" {
            (2, 0, 0)
        } else {
            (0, 0, 0)
        };
    };
    let (index, name) = rest.split_once("].").unwrap_or((rest, ""));
    let column = ["sku", "quantity", "unit_price"]
        .iter()
        .position(|c| *c == name)
        .unwrap_or(3);
    (1, index.parse().unwrap_or(usize::MAX), column)
}

#[async_trait]
impl OrdersApi for UiBridge {
    async fn list_orders(&self, cursor: Option<String>) -> Result<OrderPageDto, UiError> {
        // A mangled cursor in the address bar shows the first page rather than an error.
        let cursor = cursor.as_deref().and_then(|c| OrderCursor::parse(c).ok());
        let page = self
            .orders
            .orders(UI_PAGE, cursor)
            .await
            .map_err(ui_error)?;
        Ok(OrderPageDto {
            orders: page.orders.iter().map(views::order).collect(),
            next_cursor: page.next.map(|c| c.0.to_string()),
        })
    }

    async fn order_detail(
        &self,
        id: String,
        cursor: Option<String>,
    ) -> Result<Option<OrderDetailDto>, UiError> {
        let Ok(id) = OrderId::parse(&id) else {
            return Ok(None);
        };
        // A cursor that is not one the page made starts again from the newest events.
        let page = EventPage::parse(cursor.as_deref(), UI_PAGE)
            .unwrap_or_else(|_| EventPage::latest(UI_PAGE));
        let mut detail = views::order_detail(self.orders.as_ref(), self.log.as_ref(), id, page)
            .await
            .map_err(ui_error)?;
        if let Some(detail) = detail.as_mut()
            && self.operator()
        {
            self.paths.add_to(detail, id).await.map_err(ui_error)?;
        }
        Ok(detail)
    }

    async fn create_order(
        &self,
        customer_id: String,
        items: Vec<ItemInput>,
    ) -> Result<OrderDto, UiError> {
        let (raw, form_errors) = raw_items(&items);
        let order = match NewOrder::parse(&customer_id, &raw) {
            Ok(order) if form_errors.is_empty() => order,
            Ok(_) => {
                return Err(UiError::Invalid(form_field_errors(
                    form_errors,
                    ValidationErrors::default(),
                )));
            }
            Err(domain) => return Err(UiError::Invalid(form_field_errors(form_errors, domain))),
        };
        // The page's request, as leptos_axum hands it to server functions: its trace context
        // (set by the edge) goes with the event, as for the JSON API.
        let trace = leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<TraceContext>().cloned());
        let applied = crate::telemetry::apply_command(
            self.orders.as_ref(),
            &self.metrics,
            &self.spans,
            Command::Create {
                order,
                idempotency_key: None,
            },
            trace,
        )
        .await
        .map_err(ui_error)?;
        Ok(views::order(applied.order()))
    }

    fn suggest_customer_id(&self) -> String {
        Uuid::new_v4().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_major_units_become_cents() {
        assert_eq!(parse_price("12"), Ok(1200));
        assert_eq!(parse_price("12.5"), Ok(1250));
        assert_eq!(parse_price(" 0.07 "), Ok(7));
        for bad in [
            "",
            "abc",
            "1.234",
            "-1",
            "1,50",
            ".5",
            "5.",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_price(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn form_errors_use_the_form_field_names() {
        let rows = vec![ItemInput {
            sku: "bad sku".into(),
            quantity: "two".into(),
            unit_price: "2000000".into(),
        }];
        let (raw, form) = raw_items(&rows);
        let domain = NewOrder::parse("x", &raw).unwrap_err();
        let fields: Vec<_> = form_field_errors(form, domain)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "customer_id",
                "items[0].sku",
                "items[0].quantity",
                "items[0].unit_price"
            ]
        );
    }
}

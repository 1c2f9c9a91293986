//! The `spawn_app` harness and small helpers shared by the tests.

use app::dto::{ErrorBody, Fault, OrderDetailDto, OrderDto, RelayStatusDto};
use clap::Parser;
use outbox::config::Config;
use outbox::startup::Application;
use outbox::store::sqlite::DATABASE_FILE;
use reqwest::{Client, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The admin secret of every test instance.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running application with its own data directory, stopped when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub data_dir: TempDir,
    _stop: oneshot::Sender<()>,
}

/// Configuration for a test instance: port 0, the given data directory, durable writes, and
/// any `extra` flags.
pub fn test_config(data_dir: &Path, extra: &[&str]) -> Config {
    let base = [
        "outbox",
        "--site-addr",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8 temp path"),
        "--sqlite-synchronous",
        "full",
        "--site-root",
        "target/site",
        "--admin-token",
        ADMIN_TOKEN,
    ];
    Config::try_parse_from(base.iter().chain(extra)).expect("test configuration parses")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// An application started with extra configuration flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let app = Application::build(&test_config(data_dir.path(), extra))
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: Client::new(),
        data_dir,
        _stop: stop,
    }
}

/// A valid create-order body.
pub fn order_body(skus: &[&str]) -> Value {
    json!({
        "customer_id": "0193a5e0-7d1c-7b3a-9c4e-2f5d6a7b8c9d",
        "items": skus.iter().map(|s| json!({"sku": s, "quantity": 2, "unit_price_cents": 150})).collect::<Vec<_>>(),
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join(DATABASE_FILE)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Creates an order; panics unless the answer is 201.
    pub async fn create_order(&self, skus: &[&str]) -> OrderDto {
        let response = self.post_json("/api/orders", &order_body(skus)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("an order")
    }

    /// Creates an order and returns its id.
    pub async fn create_order_id(&self, skus: &[&str]) -> String {
        self.create_order(skus).await.id
    }

    /// GETs `path` and parses the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("JSON body")
    }

    /// GETs `path`; panics unless 200; returns the body as `T`.
    pub async fn get_ok<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response
            .json()
            .await
            .expect("the body is the documented type")
    }

    /// `GET /api/orders/{id}` (200).
    pub async fn order_detail(&self, id: &str) -> OrderDetailDto {
        self.get_ok(&format!("/api/orders/{id}")).await
    }

    /// `POST /api/orders/{id}/cancel`.
    pub async fn cancel(&self, id: &str, expected_version: u32, reason: &str) -> Response {
        let body = json!({"reason": reason, "expected_version": expected_version});
        self.post_json(&format!("/api/orders/{id}/cancel"), &body)
            .await
    }

    /// `PUT /api/orders/{id}/items`.
    pub async fn replace_items(&self, id: &str, expected_version: u32, items: Value) -> Response {
        self.client
            .put(self.url(&format!("/api/orders/{id}/items")))
            .json(&json!({"expected_version": expected_version, "items": items}))
            .send()
            .await
            .expect("request sent")
    }

    /// An admin request with the right token; `body` is sent as JSON, whatever its shape.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// `GET path` as admin; panics unless 200, returns the body as `T`.
    pub async fn admin_get<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.admin(reqwest::Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response
            .json()
            .await
            .expect("the body is the documented type")
    }

    /// `POST path` as admin with `body` as JSON (`None`: no body); panics unless 200,
    /// returns the answer as `T`.
    pub async fn admin_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<impl Serialize>,
    ) -> T {
        let body = body.map(|b| serde_json::to_value(b).expect("a serialisable body"));
        let response = self.admin(reqwest::Method::POST, path, body).await;
        assert_eq!(response.status(), StatusCode::OK, "POST {path}");
        response
            .json()
            .await
            .expect("the body is the documented type")
    }

    /// `GET /api/admin/relay`.
    pub async fn relay_status(&self) -> RelayStatusDto {
        self.admin_get("/api/admin/relay").await
    }

    /// Sets the simulated fault.
    pub async fn set_fault(&self, fault: Fault) {
        let set: Fault = self.admin_post("/api/admin/faults", Some(&fault)).await;
        assert_eq!(set, fault);
    }

    /// Rows in `table`, read straight from the database file.
    pub fn count(&self, table: &str) -> i64 {
        count_rows(&self.db_path(), table)
    }
}

/// Rows in `table` of the database at `path`.
pub fn count_rows(path: &Path, table: &str) -> i64 {
    scalar(path, &format!("SELECT count(*) FROM {table}"))
}

/// The relay's saved checkpoint in the database at `path` (0 before its first save).
pub fn relay_checkpoint(path: &Path) -> i64 {
    scalar(
        path,
        "SELECT coalesce(max(position), 0) FROM relay_checkpoints",
    )
}

/// The last commit position in the database at `path`.
pub fn last_position(path: &Path) -> i64 {
    scalar(path, "SELECT coalesce(max(position), 0) FROM outbox")
}

/// The one integer `sql` selects from the database at `path`.
pub fn scalar(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open database");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Reads an error body and checks its status and code; returns the body.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> ErrorBody {
    assert_eq!(response.status(), status, "status for expected {code}");
    let body: ErrorBody = response.json().await.expect("the API's error body");
    assert_eq!(body.error, code, "error code in {body:?}");
    assert!(!body.message.is_empty());
    body
}

/// Waits until `check` holds, checking every 20 ms for at most 10 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(Duration::from_secs(10), what, check).await;
}

/// Waits until `check` holds, checking every 20 ms for at most `limit`.
pub async fn eventually_within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

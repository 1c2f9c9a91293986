//! The monitoring assets in `monitoring/`: promtool accepts the scrape config and the alert
//! rules, and every metric the rules and the Grafana dashboard query is one the server
//! exports (so a renamed metric cannot silently blank a panel or an alert).

use crate::helpers::spawn_app;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring"))
        .output()
        .expect("promtool runs (`make test` installs Debian's prometheus package)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_and_the_scrape_config() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

/// The rules' unit tests (`alerts_test.yml`): the polling-latency alert fires at the same
/// latency with a short poll interval and stays quiet with a long one.
#[test]
fn the_alert_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "alerts_test.yml"]);
}

/// Metric names in a PromQL expression: identifiers followed by `{`, `[`, `)`, a space, an
/// operator or the end, that are not functions, keywords or label names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const NOT_METRICS: &[&str] = &[
        "sum",
        "by",
        "rate",
        "increase",
        "histogram_quantile",
        "changes",
        "and",
        "le",
        "mode",
        "to_state",
        "route",
        "status",
        "reason",
        "operation",
        "outcome",
        "event_type",
    ];
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_lowercase()) {
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        let inside_braces = expr[..expr.len() - rest.len()].matches('{').count()
            > expr[..expr.len() - rest.len()].matches('}').count();
        if !inside_braces && !NOT_METRICS.contains(&word) && word.contains('_') {
            names.insert(
                word.trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum")
                    .to_string(),
            );
        }
        rest = &rest[end..];
    }
    names
}

#[tokio::test]
async fn dashboards_and_alerts_only_use_exported_metrics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("grafana/outbox-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    assert_eq!(used.len(), 18, "every panel's metric was found: {used:?}");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let mut in_rules = BTreeSet::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(expr) = line.trim().strip_prefix("expr:") {
            let mut text = expr.trim().trim_start_matches(">-").to_string();
            while lines
                .peek()
                .is_some_and(|l| l.starts_with("          ") && !l.trim().contains(':'))
            {
                text.push(' ');
                text.push_str(lines.next().unwrap().trim());
            }
            in_rules.extend(metric_names(&text));
        }
    }
    assert!(in_rules.len() >= 5, "{in_rules:?}");
    used.extend(in_rules);

    let app = spawn_app().await;
    // HTTP series appear with the first request.
    app.get("/healthz").await;
    let scrape = app.get("/metrics").await.text().await.unwrap();
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "{name} is queried but not exported"
        );
    }
}

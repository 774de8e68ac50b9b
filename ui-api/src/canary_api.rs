//! The canary gate: `POST /api/v1/canary/analyze`, `GET /api/v1/canary/verdict` (Argo
//! Rollouts' `web` provider) and `POST /api/v1/canary/flagger` (a Flagger webhook).
//!
//! ```text
//! analyze: body {service, baseline, canary, start, end} ─┐
//! verdict: ?service=&baseline_version=&window=&anchor=  ─┼─► CanaryQuestion ─► analyze_canary
//! flagger: {name, namespace, checksum, metadata{...}}   ─┘        ─► 200 JSON (flagger: 200/412/409)
//! ```
//!
//! The judge's guarantee holds over looks at a window that keeps its start. `analyze` takes
//! the window as given. `verdict` looks back `window` from now, which slides, unless an
//! `anchor` names the rollout: then the first look fixes the start and later looks with
//! the same anchor grow the window from it. `flagger` anchors on the canary's name,
//! namespace and checksum (the checksum changes with each new revision). Anchors live in
//! memory: a restart starts them again. Live windows end `settle` (10 s) before now, so
//! that spans still in exporters' queues do not land in the middle of an earlier look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracegate_query::TimeRange;
use tracegate_query::canary::{
    CanaryAnswer, CanaryQuestion, JudgeConfig, Outcome, SpanSelector, analyze_canary,
};

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_range::{native_range, now_unix_nano, parse_duration};

/// Look-back of `verdict` and `flagger` without a `window`.
const DEFAULT_WINDOW: &str = "5m";

/// Lag of live windows behind now, without a `settle`.
const DEFAULT_SETTLE: &str = "10s";

/// Anchors kept before the least recently used are dropped.
const MAX_ANCHORS: usize = 10_000;

/// An anchor unused this long is forgotten.
const ANCHOR_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Window starts fixed by the first look of each anchored rollout.
#[derive(Debug, Default)]
pub(crate) struct WindowAnchors {
    starts: Mutex<HashMap<String, (i64, Instant)>>,
}

impl WindowAnchors {
    /// The start fixed for `key`, or `proposed` when `key` is new.
    fn start_for(&self, key: &str, proposed: i64) -> i64 {
        let Ok(mut starts) = self.starts.lock() else {
            return proposed;
        };
        let now = Instant::now();
        if starts.len() >= MAX_ANCHORS && !starts.contains_key(key) {
            starts.retain(|_, (_, used)| now.duration_since(*used) < ANCHOR_IDLE);
            if starts.len() >= MAX_ANCHORS
                && let Some(oldest) = starts
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone())
            {
                starts.remove(&oldest);
            }
        }
        let entry = starts.entry(key.to_owned()).or_insert((proposed, now));
        entry.1 = now;
        entry.0
    }
}

/// The shared anchors of one router.
pub(crate) type Anchors = Arc<WindowAnchors>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// `POST /api/v1/canary/analyze` with `{"service", "baseline", "canary", "start", "end",
/// "config"}`; `start`/`end` as RFC 3339 or Unix microseconds (default: the last 15 minutes),
/// `config` optionally overrides judge knobs.
///
/// # Errors
/// 400 naming the field for a bad body; query failures.
pub(crate) async fn analyze(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let Some(fields) = body.as_object() else {
        return Err(bad("body: want a JSON object"));
    };
    for key in fields.keys() {
        if !["service", "baseline", "canary", "start", "end", "config"].contains(&key.as_str()) {
            return Err(bad(format!(
                "{key}: unknown field: want service, baseline, canary, start, end or config"
            )));
        }
    }
    let service = required_text(fields, "service", "service")?;
    let selector = |name: &str| {
        let value = fields.get(name).ok_or_else(|| {
            bad(format!(
                "{name} is missing: want a selector such as {{\"version\": \"v2\"}}"
            ))
        })?;
        SpanSelector::from_json(name, value).map_err(|e| bad(e.to_string()))
    };
    let (baseline, canary) = (selector("baseline")?, selector("canary")?);
    let start = time_text(fields, "start")?;
    let end = time_text(fields, "end")?;
    let range = native_range(start.as_deref(), end.as_deref())?;

    let mut question = CanaryQuestion::new(service, baseline, canary, range);
    if let Some(config) = fields.get("config") {
        question.judge = serde_json::from_value::<JudgeConfig>(config.clone())
            .map_err(|e| bad(format!("config: {e}")))?;
        question
            .judge
            .validate()
            .map_err(|e| bad(format!("config: {e}")))?;
    }
    let answer = analyze_canary(&state.store.tables(), &question).await?;
    Ok(Json(answer_json(&answer, None)))
}

/// `GET /api/v1/canary/verdict?service=&baseline_version=&canary_version=&window=` (or
/// `baseline_workload=&canary_workload=`), with optional `anchor=` and `settle=`: the
/// analysis over the last `window`, always 200 with the verdict in the body, as Argo
/// Rollouts' `web` provider expects.
///
/// # Errors
/// 400 naming the parameter; query failures.
pub(crate) async fn verdict(
    State(state): State<AppState>,
    Extension(anchors): Extension<Anchors>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let get = |name: &str| params.get(name).map(String::as_str);
    let service = get("service")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("service is missing"))?;
    let (baseline, canary) = sides(&get, "")?;
    let anchor = get("anchor").filter(|a| !a.is_empty());
    let key =
        anchor.map(|anchor| format!("verdict\0{service}\0{baseline:?}\0{canary:?}\0{anchor}"));
    let (range, anchored) = live_range(get("window"), get("settle"), "", key, &anchors)?;

    let question = CanaryQuestion::new(service, baseline, canary, range);
    let answer = analyze_canary(&state.store.tables(), &question).await?;
    let mut body = answer_json(&answer, None);
    body["anchored"] = json!(anchored);
    Ok(Json(body))
}

/// `POST /api/v1/canary/flagger`: Flagger's webhook body `{"name", "namespace", "phase",
/// "checksum", "metadata": {"service", "baseline_version", "canary_version", "window",
/// "settle"}}` (or `baseline_workload`/`canary_workload`). 200 when the verdict is `pass`,
/// 412 when it is `fail`, 409 when `inconclusive`; the body is the analysis with its
/// `reason`.
pub(crate) async fn flagger(
    State(state): State<AppState>,
    Extension(anchors): Extension<Anchors>,
    body: Bytes,
) -> Response {
    match flagger_answer(&state, &anchors, &body).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn flagger_answer(
    state: &AppState,
    anchors: &WindowAnchors,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let Some(fields) = body.as_object() else {
        return Err(bad("body: want Flagger's webhook JSON object"));
    };
    let name = required_text(fields, "name", "name")?;
    let namespace = required_text(fields, "namespace", "namespace")?;
    let checksum = fields
        .get("checksum")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let phase = fields
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(metadata) = fields.get("metadata").and_then(Value::as_object) else {
        return Err(bad(
            "metadata is missing: want service, baseline_version and canary_version",
        ));
    };
    let service = required_text(metadata, "service", "metadata.service")?;
    let get = |key: &str| metadata.get(key).and_then(Value::as_str);
    let (baseline, canary) = sides(&get, "metadata.")?;
    let key = (!checksum.is_empty()).then(|| {
        format!("flagger\0{namespace}\0{name}\0{checksum}\0{service}\0{baseline:?}\0{canary:?}")
    });
    let (range, anchored) = live_range(get("window"), get("settle"), "metadata.", key, anchors)?;

    let question = CanaryQuestion::new(service, baseline, canary, range);
    let answer = analyze_canary(&state.store.tables(), &question).await?;
    let status = match answer.verdict {
        Outcome::Pass => StatusCode::OK,
        Outcome::Fail => StatusCode::PRECONDITION_FAILED,
        Outcome::Inconclusive => StatusCode::CONFLICT,
    };
    tracing::info!(
        canary = %format!("{namespace}/{name}"),
        %checksum,
        %phase,
        verdict = ?answer.verdict,
        score = answer.score,
        "flagger webhook answered"
    );
    let mut body = answer_json(&answer, Some(json!(format!("{namespace}/{name}"))));
    body["anchored"] = json!(anchored);
    body["phase"] = json!(phase);
    body["checksum"] = json!(checksum);
    Ok((status, body))
}

/// The answer as JSON, with the Flagger canary's name when there is one.
fn answer_json(answer: &CanaryAnswer, canary: Option<Value>) -> Value {
    let mut body =
        serde_json::to_value(answer).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    if let Some(canary) = canary {
        body["canary"] = canary;
    }
    body
}

/// A required non-empty string field; `path` names it in errors.
fn required_text(fields: &Map<String, Value>, key: &str, path: &str) -> Result<String, ApiError> {
    match fields.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(_) => Err(bad(format!("{path}: want a non-empty string"))),
        None => Err(bad(format!("{path} is missing"))),
    }
}

/// A time field given as a string (RFC 3339 or Unix microseconds) or an integer.
fn time_text(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) if number.is_i64() => Ok(Some(number.to_string())),
        Some(_) => Err(bad(format!(
            "{key}: want RFC 3339 text or integer Unix microseconds"
        ))),
    }
}

/// Baseline and canary selectors from `baseline_version`/`canary_version` or
/// `baseline_workload`/`canary_workload`; `prefix` names where they come from in errors.
fn sides<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    prefix: &str,
) -> Result<(SpanSelector, SpanSelector), ApiError> {
    let side = |name: &str| -> Result<SpanSelector, ApiError> {
        let version = get(&format!("{name}_version")).filter(|v| !v.is_empty());
        let workload = get(&format!("{name}_workload")).filter(|w| !w.is_empty());
        if version.is_none() && workload.is_none() {
            return Err(bad(format!(
                "{prefix}{name}_version is missing (or give {prefix}{name}_workload)"
            )));
        }
        Ok(SpanSelector {
            version: version.map(str::to_owned),
            workload: workload.map(str::to_owned),
            ..SpanSelector::default()
        })
    };
    Ok((side("baseline")?, side("canary")?))
}

/// The window of a live look: it ends `settle` before now and reaches back `window`, from
/// the anchored start when `anchor_key` names a rollout seen before. Returns whether the
/// start is anchored.
fn live_range(
    window: Option<&str>,
    settle: Option<&str>,
    prefix: &str,
    anchor_key: Option<String>,
    anchors: &WindowAnchors,
) -> Result<(TimeRange, bool), ApiError> {
    let window = parse_duration(&format!("{prefix}window"), window.unwrap_or(DEFAULT_WINDOW))?;
    let settle = parse_duration(&format!("{prefix}settle"), settle.unwrap_or(DEFAULT_SETTLE))?;
    if window.is_zero() {
        return Err(bad(format!("{prefix}window must be longer than zero")));
    }
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let end = now_unix_nano().saturating_sub(nanos(settle));
    let proposed = end.saturating_sub(nanos(window));
    let start = match &anchor_key {
        Some(key) => anchors.start_for(key, proposed).min(end),
        None => proposed,
    };
    let range = TimeRange {
        start_unix_nano: start,
        end_unix_nano: end,
    };
    Ok((range, anchor_key.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_keeps_its_first_start() {
        let anchors = WindowAnchors::default();
        assert_eq!(anchors.start_for("a", 100), 100);
        assert_eq!(anchors.start_for("a", 500), 100);
        assert_eq!(anchors.start_for("b", 500), 500);
    }

    #[test]
    fn live_windows_end_before_now_and_anchor_their_start() {
        let anchors = WindowAnchors::default();
        let (first, anchored) =
            live_range(Some("5m"), Some("10s"), "", Some("k".into()), &anchors).unwrap();
        assert!(anchored);
        assert_eq!(first.end_unix_nano - first.start_unix_nano, 300_000_000_000);
        assert!(first.end_unix_nano <= now_unix_nano() - 10_000_000_000);
        std::thread::sleep(Duration::from_millis(5));
        let (second, _) =
            live_range(Some("1m"), Some("0s"), "", Some("k".into()), &anchors).unwrap();
        assert_eq!(second.start_unix_nano, first.start_unix_nano);
        assert!(second.end_unix_nano > first.end_unix_nano);

        let (sliding, anchored) = live_range(None, None, "", None, &anchors).unwrap();
        assert!(!anchored);
        assert!(sliding.start_unix_nano > first.start_unix_nano);
    }

    #[test]
    fn missing_and_bad_parameters_name_the_field() {
        let anchors = WindowAnchors::default();
        let error = live_range(Some("soon"), None, "metadata.", None, &anchors).unwrap_err();
        assert!(
            error.message.contains("metadata.window"),
            "{}",
            error.message
        );

        let params: HashMap<&str, &str> = HashMap::from([("baseline_version", "v1")]);
        let get = |name: &str| params.get(name).copied();
        let error = sides(&get, "metadata.").unwrap_err();
        assert!(
            error
                .message
                .starts_with("metadata.canary_version is missing"),
            "{}",
            error.message
        );

        let params: HashMap<&str, &str> = HashMap::from([
            ("baseline_workload", "reviews-blue"),
            ("canary_workload", "reviews-green"),
        ]);
        let get = |name: &str| params.get(name).copied();
        let (baseline, canary) = sides(&get, "").unwrap();
        assert_eq!(baseline, SpanSelector::workload("reviews-blue"));
        assert_eq!(canary, SpanSelector::workload("reviews-green"));
    }
}

//! The gateway's own lines: an access line per request (stdout) and its
//! errors (stderr), as text or as one JSON object per line (`log_format`),
//! beside the component's audit trail, which is JSON already.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How the gateway writes its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `GET /path 200 1234µs`, `gateway: ...`.
    #[default]
    Text,
    /// `{"ts", "kind": "access"|"error", ...}`.
    Json,
}

impl FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("log format {other:?}: expected text or json"),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[derive(Serialize)]
struct Access<'a> {
    ts: f64,
    kind: &'static str,
    method: &'a str,
    /// The path only: queries carry codes and states.
    path: &'a str,
    route: &'a str,
    status: u16,
    duration_ms: f64,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    ts: f64,
    kind: &'static str,
    message: &'a str,
}

impl LogFormat {
    /// The access line of one request.
    pub fn access(
        self,
        method: &str,
        path: &str,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) -> String {
        match self {
            LogFormat::Text => format!("{method} {path} {status} {}µs", elapsed.as_micros()),
            LogFormat::Json => serde_json::to_string(&Access {
                ts: unix_seconds(),
                kind: "access",
                method,
                path,
                route,
                status,
                duration_ms: elapsed.as_secs_f64() * 1e3,
            })
            .unwrap_or_default(),
        }
    }

    /// An error line of the gateway (never a secret: callers name paths
    /// without queries, and errors without bodies).
    pub fn error(self, message: &str) -> String {
        match self {
            LogFormat::Text => format!("gateway: {message}"),
            LogFormat::Json => serde_json::to_string(&ErrorLine {
                ts: unix_seconds(),
                kind: "error",
                message,
            })
            .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_one_object_each_and_text_stays_as_it_was() {
        let line = LogFormat::Json.access(
            "GET",
            "/auth/wecom/verify",
            "verify",
            200,
            Duration::from_micros(1500),
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["kind"], "access");
        assert_eq!(parsed["route"], "verify");
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["duration_ms"], 1.5);
        let error: serde_json::Value =
            serde_json::from_str(&LogFormat::Json.error("a \"quoted\"\nline")).unwrap();
        assert_eq!(error["message"], "a \"quoted\"\nline");
        assert_eq!(
            LogFormat::Text.access("GET", "/x", "site", 404, Duration::from_micros(7)),
            "GET /x 404 7µs"
        );
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}

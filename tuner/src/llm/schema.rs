//! `response_format` for a batch, and validation of the answer.
//!
//! The preferred format is a JSON schema that pins every pid: an object whose `verdicts` array
//! has exactly one entry per asked pid, in order, each entry's `pid` a `const` (`prefixItems`,
//! `minItems` = `maxItems` = n). llama.cpp turns the schema into a grammar, so the model cannot
//! drop, invent or reorder a pid; only the class is its choice. `items: false` is left out on
//! purpose: llama.cpp's chat parser rejects a boolean schema there, and `maxItems` already
//! closes the array.
//!
//! Servers that reject that schema (HTTP 400/422) get, in turn, a plain schema (any pid, any
//! number of entries), then JSON mode (`json_object`), then no `response_format` at all. Every
//! answer is validated the same way whatever the format: unknown pids, repeated pids and unknown
//! classes are dropped.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::hint::HintClass;

/// A class the model may answer: one of [`HintClass::HINTED`]. `none` is not among them: "no
/// opinion" is expressed by the ceiling, not by the model.
pub fn class_from_name(s: &str) -> Option<HintClass> {
    s.parse().ok().filter(|c| *c != HintClass::None)
}

/// The name of a class the model may answer, `None` for [`HintClass::None`].
pub fn class_name(c: HintClass) -> Option<&'static str> {
    (c != HintClass::None).then_some(c.as_str())
}

/// How strongly the answer's shape is constrained; a server that rejects one level gets the
/// next. The order is the fallback order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatLevel {
    PinnedSchema = 0,
    PlainSchema = 1,
    JsonObject = 2,
    Unconstrained = 3,
}

impl FormatLevel {
    pub const ALL: [FormatLevel; 4] = [
        FormatLevel::PinnedSchema,
        FormatLevel::PlainSchema,
        FormatLevel::JsonObject,
        FormatLevel::Unconstrained,
    ];

    pub fn from_index(i: u8) -> FormatLevel {
        Self::ALL[usize::from(i).min(Self::ALL.len() - 1)]
    }

    pub fn next(self) -> Option<FormatLevel> {
        Self::ALL.get(self as usize + 1).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            FormatLevel::PinnedSchema => "json_schema (pinned pids)",
            FormatLevel::PlainSchema => "json_schema (plain)",
            FormatLevel::JsonObject => "json_object",
            FormatLevel::Unconstrained => "none",
        }
    }
}

fn class_enum() -> Value {
    Value::from(HintClass::HINTED.map(HintClass::as_str).to_vec())
}

fn wrap(schema: Value) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": { "name": "sched_hint_verdicts", "strict": true, "schema": schema },
    })
}

/// The `response_format` value for a batch asking about `pids`, or `None` to send none.
pub fn response_format(level: FormatLevel, pids: &[i32]) -> Option<Value> {
    let verdicts = match level {
        FormatLevel::PinnedSchema => {
            let entries: Vec<Value> = pids
                .iter()
                .map(|p| {
                    json!({
                        "type": "object",
                        "properties": { "pid": { "const": p }, "class": { "enum": class_enum() } },
                        "required": ["pid", "class"],
                        "additionalProperties": false,
                    })
                })
                .collect();
            json!({
                "type": "array",
                "minItems": pids.len(),
                "maxItems": pids.len(),
                "prefixItems": entries,
            })
        }
        FormatLevel::PlainSchema => json!({
            "type": "array",
            "items": {
                "type": "object",
                "properties": { "pid": { "type": "integer" }, "class": { "enum": class_enum() } },
                "required": ["pid", "class"],
                "additionalProperties": false,
            },
        }),
        FormatLevel::JsonObject => return Some(json!({ "type": "json_object" })),
        FormatLevel::Unconstrained => return None,
    };
    Some(wrap(json!({
        "type": "object",
        "properties": { "verdicts": verdicts },
        "required": ["verdicts"],
        "additionalProperties": false,
    })))
}

/// Tokens to allow for an answer about `n` processes. A pretty-printed entry takes about 23
/// tokens with SmolLM2's tokenizer; the rest is slack for the wrapper.
pub fn max_tokens(n: usize) -> u32 {
    (32 + 40 * n).min(8192) as u32
}

/// What was kept of an answer, and how many entries were dropped.
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    pub verdicts: Vec<(i32, HintClass)>,
    pub dropped: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnswerError {
    #[error("answer is not json: {0}")]
    NotJson(String),
    #[error("answer has no verdicts array")]
    NoVerdicts,
}

/// Parses and validates the model's message content against the pids asked about. Accepts
/// `{"verdicts":[...]}` or a bare array. Drops entries that are not objects, lack an integer pid
/// or a known class, name a pid not asked about, or repeat a pid (every entry for a repeated
/// pid goes: the answer contradicts itself).
pub fn check_answer(content: &str, asked: &[i32]) -> Result<Checked, AnswerError> {
    let v: Value = serde_json::from_str(strip_fence(content))
        .map_err(|e| AnswerError::NotJson(e.to_string()))?;
    let entries = match &v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("verdicts") {
            Some(Value::Array(a)) => a,
            _ => return Err(AnswerError::NoVerdicts),
        },
        _ => return Err(AnswerError::NoVerdicts),
    };
    let mut seen: HashMap<i32, (usize, Option<HintClass>)> = HashMap::new();
    let mut order = Vec::new();
    let mut dropped = 0usize;
    for e in entries {
        let pid = e
            .get("pid")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok());
        let class = e
            .get("class")
            .and_then(Value::as_str)
            .and_then(class_from_name);
        match (pid, class) {
            (Some(pid), Some(class)) if asked.contains(&pid) => {
                let slot = seen.entry(pid).or_insert_with(|| {
                    order.push(pid);
                    (0, Some(class))
                });
                slot.0 += 1;
                if slot.0 > 1 {
                    slot.1 = None;
                }
            }
            _ => dropped += 1,
        }
    }
    let mut verdicts = Vec::with_capacity(order.len());
    for pid in order {
        match seen[&pid] {
            (_, Some(c)) => verdicts.push((pid, c)),
            (n, None) => dropped += n,
        }
    }
    Ok(Checked { verdicts, dropped })
}

/// Small models in JSON mode sometimes wrap the JSON in a Markdown code fence.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_schema_pins_every_pid_in_order() {
        let rf = response_format(FormatLevel::PinnedSchema, &[7, 3, 9]).unwrap();
        assert_eq!(rf["type"], "json_schema");
        let arr = &rf["json_schema"]["schema"]["properties"]["verdicts"];
        assert_eq!(arr["minItems"], 3);
        assert_eq!(arr["maxItems"], 3);
        assert!(arr.get("items").is_none(), "llama.cpp rejects items: false");
        let pids: Vec<i64> = arr["prefixItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["properties"]["pid"]["const"].as_i64().unwrap())
            .collect();
        assert_eq!(pids, [7, 3, 9]);
        let classes = &arr["prefixItems"][0]["properties"]["class"]["enum"];
        assert_eq!(classes.as_array().unwrap().len(), 5);
        assert!(!classes.as_array().unwrap().contains(&json!("none")));
    }

    #[test]
    fn fallback_chain() {
        let mut l = FormatLevel::PinnedSchema;
        let mut seen = vec![l];
        while let Some(n) = l.next() {
            seen.push(n);
            l = n;
        }
        assert_eq!(seen, FormatLevel::ALL);
        assert_eq!(
            response_format(FormatLevel::JsonObject, &[1]).unwrap()["type"],
            "json_object"
        );
        assert_eq!(response_format(FormatLevel::Unconstrained, &[1]), None);
        let plain = response_format(FormatLevel::PlainSchema, &[1]).unwrap();
        assert_eq!(
            plain["json_schema"]["schema"]["properties"]["verdicts"]["items"]["type"],
            "object"
        );
        assert_eq!(FormatLevel::from_index(9), FormatLevel::Unconstrained);
    }

    #[test]
    fn answer_accepts_both_shapes() {
        let want = Checked {
            verdicts: vec![(1, HintClass::Batch), (2, HintClass::Latency)],
            dropped: 0,
        };
        let a = r#"{"verdicts":[{"pid":1,"class":"batch"},{"pid":2,"class":"latency"}]}"#;
        assert_eq!(check_answer(a, &[1, 2]).unwrap(), want);
        let b = r#"[{"pid":1,"class":"batch"},{"pid":2,"class":"latency"}]"#;
        assert_eq!(check_answer(b, &[1, 2]).unwrap(), want);
        let fenced = format!("```json\n{a}\n```");
        assert_eq!(check_answer(&fenced, &[1, 2]).unwrap(), want);
    }

    #[test]
    fn answer_drops_what_does_not_fit() {
        let a = r#"{"verdicts":[
            {"pid":1,"class":"batch"},
            {"pid":99,"class":"batch"},
            {"pid":2,"class":"realtime"},
            {"pid":3,"class":"interactive"},{"pid":3,"class":"latency"},
            {"pid":"4","class":"batch"},
            {"pid":5},
            7,
            {"pid":4294967297,"class":"batch"}
        ]}"#;
        let c = check_answer(a, &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(c.verdicts, vec![(1, HintClass::Batch)]);
        assert_eq!(c.dropped, 8);
    }

    #[test]
    fn answer_errors() {
        assert!(matches!(
            check_answer("<html>", &[1]),
            Err(AnswerError::NotJson(_))
        ));
        assert!(matches!(
            check_answer(r#"{"verdicts":[{"pid":1,"#, &[1]),
            Err(AnswerError::NotJson(_))
        ));
        assert_eq!(
            check_answer(r#"{"x":1}"#, &[1]),
            Err(AnswerError::NoVerdicts)
        );
        assert_eq!(check_answer("3", &[1]), Err(AnswerError::NoVerdicts));
    }

    #[test]
    fn class_names_round_trip() {
        for c in HintClass::HINTED {
            let n = c.as_str();
            assert_eq!(class_from_name(n), Some(c));
            assert_eq!(class_name(c), Some(n));
        }
        assert_eq!(class_name(HintClass::None), None);
        assert_eq!(class_from_name("Latency"), None);
    }
}

//! `openapi.yaml` and the server kept in step: the file is valid OpenAPI 3.1,
//! its paths are exactly the server's routes, and every response the suite
//! receives validates against the file (status listed, content type,
//! schema, documented headers).

use crate::helpers::Resp;
use jsonschema::{Draft, Validator};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use wsticket::routes::{ADMIN_ROUTES, API_ROUTES};

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml is readable");
        serde_norway::from_str(&text).expect("openapi.yaml is valid YAML")
    })
}

/// Follow a `$ref` to `#/components/...` (response and header objects).
fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            resolve(
                doc()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => v,
    }
}

fn compile(schema: &Value) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    // The schema becomes the root of a document that also holds the
    // components, so `#/components/schemas/...` resolves.
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), doc()["components"].clone());
    }
    let v = Arc::new(
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema}")),
    );
    cache.lock().unwrap().insert(key, v.clone());
    v
}

#[track_caller]
fn validate(schema: &Value, instance: &Value, what: &str) {
    let v = compile(schema);
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{what} does not match openapi.yaml: {errors:?}\ninstance: {instance}"
    );
}

fn operation(method: &str, route: &str, status: u16) -> Option<&'static Value> {
    let path = doc()["paths"].get(route)?;
    let m = method.to_ascii_lowercase();
    if let Some(op) = path.get(&m) {
        return Some(op);
    }
    // A 405 answers a method the path lacks: any operation of the path
    // documents it.
    (status == 405)
        .then(|| {
            path.as_object()?
                .values()
                .find(|op| op.get("responses").is_some())
        })
        .flatten()
}

/// Called by the test helpers for every response the suite receives.
#[track_caller]
pub fn check_response(method: &str, route: Option<&str>, resp: &Resp) {
    let ctype = resp.header("content-type").unwrap_or("").to_owned();
    let op = route.and_then(|r| operation(method, r, resp.status));
    let Some(op) = op else {
        // Unknown route: the body is still a problem document.
        assert!(resp.status >= 400, "unknown route answered {}", resp.status);
        assert_eq!(ctype, "application/problem+json");
        validate(
            &json!({"$ref": "#/components/schemas/Problem"}),
            &resp.body,
            "problem body",
        );
        return;
    };
    let what = format!("{method} {} -> {}", route.unwrap_or("?"), resp.status);
    let response = op["responses"]
        .get(resp.status.to_string())
        .map(resolve)
        .unwrap_or_else(|| panic!("openapi.yaml documents no {what}; body: {}", resp.text));
    if let Some(content) = response.get("content").and_then(Value::as_object) {
        let essence = |s: &str| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        let (_, media) = content
            .iter()
            .find(|(k, _)| k.as_str() == ctype)
            .or_else(|| content.iter().find(|(k, _)| essence(k) == essence(&ctype)))
            .unwrap_or_else(|| panic!("{what}: content type {ctype:?} is not documented"));
        let instance = if essence(&ctype).ends_with("json") {
            resp.body.clone()
        } else {
            Value::String(resp.text.clone())
        };
        validate(&media["schema"], &instance, &format!("{what} body"));
    } else {
        assert!(resp.text.is_empty(), "{what}: undocumented body");
    }
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, h) in headers {
            let h = resolve(h);
            let value = resp.header(name);
            match value {
                None => assert!(
                    h.get("required") != Some(&Value::Bool(true)),
                    "{what}: required header {name} missing"
                ),
                Some(v) => {
                    if let Some(schema) = h.get("schema") {
                        validate(
                            schema,
                            &Value::String(v.into()),
                            &format!("{what} header {name}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn openapi_is_a_valid_openapi_3_1_document() {
    let meta: Value = serde_json::from_str(include_str!("oas-3.1-schema.json")).unwrap();
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&meta)
        .expect("meta-schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc())
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc()["openapi"], "3.1.0");
}

#[test]
fn every_schema_in_the_file_compiles() {
    fn walk(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if let Some(s) = m.get("schema") {
                    out.push(s.clone());
                }
                m.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut schemas = Vec::new();
    walk(&doc()["paths"], &mut schemas);
    walk(&doc()["components"]["responses"], &mut schemas);
    walk(&doc()["components"]["headers"], &mut schemas);
    for name in doc()["components"]["schemas"].as_object().unwrap().keys() {
        schemas.push(json!({ "$ref": format!("#/components/schemas/{name}") }));
    }
    assert!(schemas.len() > 10);
    for s in &schemas {
        compile(s);
    }
}

#[test]
fn the_server_routes_and_the_file_paths_are_the_same_set() {
    let server: BTreeSet<(String, String)> = API_ROUTES
        .iter()
        .chain(ADMIN_ROUTES)
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let mut file = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                file.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(server, file);
}

#[test]
fn every_problem_code_the_server_can_send_is_in_the_file() {
    let codes: BTreeSet<&str> = doc()["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("ProblemCode is an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    use wsticket::routes::problem::Code;
    for e in Code::ALL.iter().map(|c| c.as_str()) {
        assert!(codes.contains(e), "{} missing from Problem.code", e);
    }
}

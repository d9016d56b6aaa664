#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Chat templates rendered as Hugging Face's `apply_chat_template` renders them
//! (jinja2 with trim_blocks and lstrip_blocks, its `tojson` and
//! `raise_exception`). Expected strings were produced by jinja2 3.1.6 set up
//! as transformers sets it up, and checked by reading the templates. The
//! model comes from scripts/fetch-models.sh.

use std::path::PathBuf;

use seldon_engine::chat_template::{ChatMessage, ChatTemplate, DEFAULT_FUEL, TemplateError};
use seldon_formats::gguf::{GgufFile, GgufWriter, Value};

fn smollm2_path() -> PathBuf {
    let models = std::env::var_os("SELDON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon/models")
        });
    let path = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

#[test]
fn smollm2_chatml_matches_hf() {
    let file = GgufFile::open(&smollm2_path()).unwrap();
    let t = ChatTemplate::from_gguf(&file).unwrap();
    assert_eq!(t.bos_token(), "<|im_start|>");
    assert_eq!(t.eos_token(), "<|im_end|>");

    // No system message: the template adds SmolLM2's default one.
    let out = t
        .render(&[msg("user", "What is the capital of France?")], true)
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\n"
    );

    let conversation = [
        msg("system", "Be brief."),
        msg("user", "Hi"),
        msg("assistant", "Hello!"),
        msg("user", "Bye"),
    ];
    let out = t.render(&conversation, false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    );
}

/// Exercises what HF templates lean on beyond plain Jinja: whitespace
/// control with trim_blocks/lstrip_blocks, `namespace`, `break`, Python
/// string methods, `trim`, `tojson` with Python's separators, unicode and
/// float spelling, and Python's printing of None/True/floats.
const FEATURE_TEMPLATE: &str = r#"{%- set ns = namespace(found=false, n=0) -%}
{%- for m in messages %}
    {%- if m.role == 'system' %}{% set ns.found = true %}{% endif %}
    {%- set ns.n = ns.n + 1 %}
{%- endfor %}
{{- bos_token }}
{%- if not ns.found %}
<|system|>
default{{ eos_token }}
{% endif %}
{% for message in messages %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('bad role ' + message['role']) }}
    {% endif %}
    {% if message.content.startswith('/stop') %}{% break %}{% endif %}
<|{{ message.role }}|>
{{ message.content.strip() | trim }}{{ eos_token }}
    {% if loop.last %}[last of {{ ns.n }}]{% endif %}

{% endfor %}
{{ {'name': 'get_weather', 'args': {'city': 'Zürich', 'days': [1, 2.5, 1e-05]}, 'ok': true, 'none': none} | tojson }}
{{ [1, {'b': 'x"y'}] | tojson(indent=2) }}
{{ none }} {{ true }} {{ 0.1 + 0.2 }} {{ 3 }} {{ 1.0 }}
{{ 'a,b,,c'.split(',') | length }} {{ 'Hello'.upper() }} {{ {'k': 1}.items() | list | length }}
{% if add_generation_prompt %}
<|assistant|>
{% endif %}"#;

const FEATURE_TAIL: &str = "{\"name\": \"get_weather\", \"args\": {\"city\": \"Zürich\", \"days\": [1, 2.5, 1e-05]}, \"ok\": true, \"none\": null}\n\
    [\n  1,\n  {\n    \"b\": \"x\\\"y\"\n  }\n]\n\
    None True 0.30000000000000004 3 1.0\n\
    4 HELLO 1\n";

#[test]
fn hf_template_features_match_jinja2() {
    let t = ChatTemplate::new(FEATURE_TEMPLATE)
        .unwrap()
        .with_special_tokens("<s>", "</s>");
    let out = t
        .render(
            &[
                msg("user", "  Hi there \n"),
                msg("assistant", "Hello! éà"),
                msg("user", "Bye"),
                msg("user", "/stop now"),
            ],
            true,
        )
        .unwrap();
    let want = format!(
        "<s><|system|>\ndefault</s>\n<|user|>\nHi there</s>\n\n<|assistant|>\nHello! éà</s>\n\n\
         <|user|>\nBye</s>\n\n{FEATURE_TAIL}<|assistant|>\n"
    );
    assert_eq!(out, want);

    let out = t
        .render(&[msg("system", "Sys"), msg("user", "Q?")], false)
        .unwrap();
    let want = format!("<s><|system|>\nSys</s>\n\n<|user|>\nQ?</s>\n[last of 2]\n{FEATURE_TAIL}");
    assert_eq!(out, want);
}

#[test]
fn messages_serialize_in_python_dict_order() {
    let t = ChatTemplate::new("{{ messages | tojson }}|{{ messages[0] | tojson(sort_keys=true) }}")
        .unwrap();
    let out = t.render(&[msg("user", "a\nb")], false).unwrap();
    assert_eq!(
        out,
        r#"[{"role": "user", "content": "a\nb"}]|{"content": "a\nb", "role": "user"}"#
    );
}

#[test]
fn raise_exception_is_a_raised_error() {
    let t = ChatTemplate::new(FEATURE_TEMPLATE).unwrap();
    let err = t.render(&[msg("tool", "42")], false).unwrap_err();
    match err {
        TemplateError::Raised { message } => assert_eq!(message, "bad role tool"),
        other => panic!("expected Raised, got {other:?}"),
    }
}

#[test]
fn a_looping_template_runs_out_of_fuel() {
    let looping =
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}";
    let t = ChatTemplate::new(looping).unwrap();
    let start = std::time::Instant::now();
    match t.render(&[], false).unwrap_err() {
        TemplateError::OutOfFuel { fuel } => assert_eq!(fuel, DEFAULT_FUEL),
        other => panic!("expected OutOfFuel, got {other:?}"),
    }
    assert!(
        start.elapsed().as_secs() < 30,
        "fuel did not stop the loop early"
    );

    // A tight budget stops even an ordinary template; the message says so.
    let file = GgufFile::open(&smollm2_path()).unwrap();
    let t = ChatTemplate::from_gguf(&file).unwrap().with_fuel(10);
    let err = t.render(&[msg("user", "Hi")], true).unwrap_err();
    assert!(
        matches!(err, TemplateError::OutOfFuel { fuel: 10 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("fuel"), "{err}");
}

#[test]
fn a_long_conversation_fits_the_default_fuel() {
    let file = GgufFile::open(&smollm2_path()).unwrap();
    let t = ChatTemplate::from_gguf(&file).unwrap();
    let conversation: Vec<ChatMessage> = (0..2000)
        .map(|i| {
            msg(
                if i % 2 == 0 { "user" } else { "assistant" },
                &"word ".repeat(50),
            )
        })
        .collect();
    let out = t.render(&conversation, true).unwrap();
    assert_eq!(out.matches("<|im_start|>").count(), 2002);
}

#[test]
fn memory_bombs_are_stopped() {
    // A string repeated past the fuel's data budget.
    let t = ChatTemplate::new("{{ 'x' * 1000000000 }}").unwrap();
    let err = t.render(&[], false).unwrap_err();
    assert!(
        matches!(
            err,
            TemplateError::OutOfFuel { .. } | TemplateError::Render { .. }
        ),
        "{err:?}"
    );
    // Unbounded recursion through a macro hits the recursion limit.
    let t = ChatTemplate::new("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").unwrap();
    let err = t.render(&[], false).unwrap_err();
    assert!(
        matches!(
            err,
            TemplateError::Render { .. } | TemplateError::OutOfFuel { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn parse_and_render_errors_are_reported() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}").unwrap_err();
    assert!(matches!(err, TemplateError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("does not parse"), "{err}");

    let t = ChatTemplate::new("{{ messages[0].content.missing.deeper }}").unwrap();
    let err = t.render(&[msg("user", "x")], false).unwrap_err();
    assert!(matches!(err, TemplateError::Render { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn a_file_without_a_template_is_missing() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()))
        .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert!(matches!(
        ChatTemplate::from_gguf(&file),
        Err(TemplateError::Missing)
    ));
}

#[test]
fn strftime_now_gives_a_date() {
    let t = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}").unwrap();
    let out = t.render(&[], false).unwrap();
    let parts: Vec<&str> = out.split('-').collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert!(parts[0].parse::<u32>().unwrap() >= 2024, "{out}");
    assert!(
        (1..=12).contains(&parts[1].parse::<u32>().unwrap()),
        "{out}"
    );
}

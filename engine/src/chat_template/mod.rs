//! Chat templates: the Jinja template a GGUF file carries in
//! `tokenizer.chat_template`, rendered the way Hugging Face's
//! `apply_chat_template` (and llama.cpp's `--jinja` path) render it.
//!
//! Templates come from files and are untrusted, so they run in minijinja,
//! which has no file system, network or Python access, under a fuel budget
//! that bounds both the instructions a render may execute and the data it may
//! create. A template that does not parse, calls `raise_exception`, runs out of
//! fuel or fails otherwise is a [`TemplateError`], never a panic or a hang.
//!
//! What HF templates rely on and minijinja does not do by itself is added
//! here: `trim_blocks` and `lstrip_blocks` (HF compiles templates with both),
//! Python string and dict methods (`.strip()`, `.startswith()`, `.items()`,
//! through minijinja-contrib's pycompat), `raise_exception`, `strftime_now`, a
//! `tojson` that writes what Python's `json.dumps` writes, and Python's
//! spelling of `None`, `True`, `False` and floats when they are printed.

mod pyjson;
mod strftime;

use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, Output, State, Value};
use seldon_formats::gguf::GgufFile;

/// The GGUF key that holds a model's chat template.
pub const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// Fuel for one render unless [`ChatTemplate::with_fuel`] sets another: about a
/// million template instructions, or about 64 MiB of data created. Real
/// templates use a few dozen instructions per message, so this covers
/// conversations of tens of thousands of messages while a runaway template
/// stops within a second.
pub const DEFAULT_FUEL: u64 = 1_000_000;

/// The name the template is registered under; it shows up in error messages.
const TEMPLATE_NAME: &str = "chat_template";

/// Why a chat template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The GGUF file has no `tokenizer.chat_template` (or it is not a string).
    #[error("the model has no chat template (GGUF key {KEY_CHAT_TEMPLATE})")]
    Missing,
    /// The template is not valid Jinja.
    #[error("chat template does not parse: {message}")]
    Parse {
        /// minijinja's description, with the line.
        message: String,
    },
    /// The template called `raise_exception(message)`, as HF templates do to
    /// reject a conversation (an unsupported role, a bad message order).
    #[error("chat template raised an exception: {message}")]
    Raised {
        /// The message the template passed.
        message: String,
    },
    /// The render used up its fuel: the template loops too long or builds
    /// too much data.
    #[error("chat template ran out of fuel ({fuel} units): it loops too long or builds too much")]
    OutOfFuel {
        /// The budget it was given.
        fuel: u64,
    },
    /// Any other failure while rendering (an undefined value used where one
    /// is needed, a type error, a recursion limit).
    #[error("chat template failed: {message}")]
    Render {
        /// minijinja's description, with the line.
        message: String,
    },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user", "assistant", "tool", ... as the template expects.
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A parsed chat template, ready to render conversations.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    fuel: u64,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Parses `source`. `bos_token` and `eos_token` start empty; set them with
    /// [`with_special_tokens`](Self::with_special_tokens).
    pub fn new(source: impl Into<String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // HF compiles chat templates with both; templates are written for them.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| TemplateError::Parse {
                    message: e.to_string(),
                })?,
        );
        env.set_fuel(Some(DEFAULT_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.into())
            .map_err(|e| TemplateError::Parse {
                message: describe(&e),
            })?;
        Ok(Self {
            env,
            fuel: DEFAULT_FUEL,
            bos_token: String::new(),
            eos_token: String::new(),
        })
    }

    /// The template in a GGUF file's `tokenizer.chat_template`, with
    /// `bos_token`/`eos_token` set to the texts of the file's BOS and EOS
    /// tokens (as llama.cpp does; empty where the file names none).
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TemplateError> {
        let source = file
            .get_str(KEY_CHAT_TEMPLATE)
            .ok_or(TemplateError::Missing)?;
        let token = |key: &str| -> String {
            let id = file.get_u64(key);
            let tokens = file.get_array("tokenizer.ggml.tokens");
            id.and_then(|id| usize::try_from(id).ok())
                .and_then(|id| tokens?.items.get(id)?.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let bos = token("tokenizer.ggml.bos_token_id");
        let eos = token("tokenizer.ggml.eos_token_id");
        Ok(Self::new(source)?.with_special_tokens(bos, eos))
    }

    /// Sets the texts the template sees as `bos_token` and `eos_token`.
    pub fn with_special_tokens(mut self, bos: impl Into<String>, eos: impl Into<String>) -> Self {
        self.bos_token = bos.into();
        self.eos_token = eos.into();
        self
    }

    /// Sets the fuel budget of each render (see [`DEFAULT_FUEL`]).
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self.env.set_fuel(Some(fuel));
        self
    }

    /// The text the template sees as `bos_token`.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The text the template sees as `eos_token`.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The prompt text for `messages`; with `add_generation_prompt`, followed
    /// by what opens the assistant's reply.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TemplateError::Render {
                message: describe(&e),
            })?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| Value::from_object(MessageValue(m.clone())))
            .collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        template.render(ctx).map_err(|e| self.classify(&e))
    }

    fn classify(&self, err: &Error) -> TemplateError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(raised) = e.downcast_ref::<Raised>() {
                return TemplateError::Raised {
                    message: raised.0.clone(),
                };
            }
            if let Some(inner) = e.downcast_ref::<Error>()
                && inner.kind() == ErrorKind::OutOfFuel
            {
                return TemplateError::OutOfFuel { fuel: self.fuel };
            }
            source = e.source();
        }
        TemplateError::Render {
            message: describe(err),
        }
    }
}

/// minijinja's message on one line, with the template line where known.
fn describe(err: &Error) -> String {
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        source = e.source();
    }
    msg.replace('\n', " ")
}

/// The message a template passed to `raise_exception`, carried as the source
/// of the render error so that it can be told apart from engine errors.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(
        Error::new(ErrorKind::InvalidOperation, "raise_exception called")
            .with_source(Raised(message)),
    )
}

/// HF and llama.cpp give templates the local time through `strftime_now`
/// (Llama 3.x templates print today's date).
fn strftime_now(format: &str) -> Result<Value, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(now).unwrap_or(i64::MAX);
    Ok(Value::from(strftime::format_utc(format, secs)))
}

/// `tojson(indent=None, sort_keys=False, ensure_ascii=False, separators=None)`
/// as HF defines it: Python's `json.dumps` with those arguments.
fn tojson(
    state: &State,
    value: &Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        Some(v) if v.is_none() => None,
        Some(v) => Some(usize::try_from(v)?),
        None => None,
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let separators = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let item = v.get_item_by_index(0)?;
            let key = v.get_item_by_index(1)?;
            match (item.as_str(), key.as_str()) {
                (Some(i), Some(k)) => Some((i.to_owned(), k.to_owned())),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ));
                }
            }
        }
        _ => None,
    };
    kwargs.assert_all_used()?;
    let opts = pyjson::DumpOptions {
        indent,
        sort_keys,
        ensure_ascii,
        separators,
    };
    let text = pyjson::dumps(value, &opts)?;
    // One unit per 64 bytes, as minijinja charges for the data it creates.
    state.consume_fuel(text.len() as u64 / 64)?;
    Ok(Value::from(text))
}

/// Prints values as Jinja2 (Python) does where minijinja differs: `None`,
/// `True`/`False`, floats in `repr` form; undefined prints nothing.
fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let text = if value.is_undefined() {
        Some(String::new())
    } else if value.is_none() {
        Some("None".to_owned())
    } else if let Ok(b) = bool::try_from(value.clone())
        && matches!(value.kind(), minijinja::value::ValueKind::Bool)
    {
        Some(if b { "True" } else { "False" }.to_owned())
    } else if value.is_number() && !value.is_integer() {
        f64::try_from(value.clone()).ok().map(pyjson::float_repr)
    } else {
        None
    };
    match text {
        Some(t) => out
            .write_str(&t)
            .map_err(|e| Error::new(ErrorKind::WriteFailure, "writing output").with_source(e)),
        None => minijinja::escape_formatter(out, state, value),
    }
}

/// A message as the template sees it: a map with `role` and `content`, in
/// that order (so that `message | tojson` matches Python's dict order).
#[derive(Debug)]
struct MessageValue(ChatMessage);

impl Object for MessageValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.0.role.as_str())),
            "content" => Some(Value::from(self.0.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

//! Generation as an iterator of text pieces ([`TextStream`]); the callback
//! forms of [`Session`]'s methods drive the same iterator.

use std::time::Instant;

use super::chat::ChatState;
use super::text::{StopMatcher, Utf8Joiner};
use super::{CancelToken, EngineError, Session};
use crate::chat_template::ChatMessage;
use crate::generate::StopReason;
use crate::model::{Logits, ModelError};
use crate::sampler::{Sampler, SamplerParams};

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The most tokens to generate; `None` runs until another stop.
    pub max_tokens: Option<usize>,
    /// Sampling settings (temperature 0 is greedy; the seed makes it repeatable).
    pub sampling: SamplerParams,
    /// Generation stops when its text contains one of these; the stop string
    /// and anything after it are not emitted.
    pub stop: Vec<String>,
    /// Stop at an end-of-generation token (EOS, `<|im_end|>`, ...), which is not
    /// emitted. When false, such tokens are emitted as text and generation goes on.
    pub stop_at_eos: bool,
    /// Checked before every step; cancelling it ends generation with
    /// [`StopReason::Cancelled`].
    pub cancel: Option<CancelToken>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: Some(256),
            sampling: SamplerParams::default(),
            stop: Vec::new(),
            stop_at_eos: true,
            cancel: None,
        }
    }
}

impl GenerateOptions {
    /// The defaults with greedy sampling.
    pub fn greedy() -> Self {
        Self {
            sampling: SamplerParams {
                temp: 0.0,
                ..SamplerParams::default()
            },
            ..Self::default()
        }
    }
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The emitted text (without a stop string or an end-of-generation token).
    pub text: String,
    /// The generated tokens; after a stop string this includes the tokens
    /// that made it, whose text was not emitted.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop: StopReason,
    /// Tokens in the prompt (the whole sequence, for chat the whole conversation).
    pub prompt_tokens: usize,
    /// Prompt tokens actually evaluated; the rest were reused from the cache.
    pub prefilled_tokens: usize,
    /// Seconds spent on the prompt.
    pub prompt_secs: f64,
    /// Seconds spent generating.
    pub gen_secs: f64,
}

impl Completion {
    /// Prefilled prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        rate(self.prefilled_tokens, self.prompt_secs)
    }

    /// Generated tokens per second.
    pub fn gen_tps(&self) -> f64 {
        rate(self.tokens.len(), self.gen_secs)
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// A generation in progress: an iterator of text pieces. Each `next()` runs
/// one or more decode steps and yields the next non-empty piece, so the text
/// can be shown as it comes. Pieces are whole UTF-8 characters; text that may
/// start a stop string is held back until it is known not to.
///
/// When the stream comes from a `user_turn` method, the text it emitted is
/// added to the session's chat history as the assistant's reply when the
/// stream is dropped (even if it is dropped early).
///
/// A stream borrows its session; dropping it early leaves the session usable.
#[derive(Debug)]
pub struct TextStream<'s> {
    session: &'s mut Session,
    options: GenerateOptions,
    sampler: Sampler,
    /// The logits for the next token; `None` once nothing more is evaluated.
    logits: Option<Vec<f32>>,
    joiner: Utf8Joiner,
    matcher: StopMatcher,
    tokens: Vec<u32>,
    text: String,
    stop: Option<StopReason>,
    failed: bool,
    prompt_tokens: usize,
    prefilled_tokens: usize,
    prompt_secs: f64,
    gen_start: Instant,
    gen_secs: f64,
    prompt: Vec<u32>,
    chat: Option<ChatTurn>,
}

/// What a chat stream remembers for the session when it ends.
#[derive(Debug)]
pub(super) struct ChatTurn {
    /// The rendered prompt text.
    pub(super) prompt_text: String,
    /// Add the reply to the session's history.
    pub(super) record_reply: bool,
}

/// A prompt evaluated and ready to generate from (no borrow of the session,
/// so that a caller can still undo its own changes when this fails).
pub(super) struct Prepared {
    prompt: Vec<u32>,
    sampler: Sampler,
    logits: Option<Vec<f32>>,
    prompt_tokens: usize,
    prefilled_tokens: usize,
    prompt_secs: f64,
}

impl Session {
    /// Prefills `prompt` (reusing the cached prefix) and sets up the sampler.
    pub(super) fn prepare(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Prepared, EngineError> {
        let t0 = Instant::now();
        let pre = self.prefill(prompt, options.cancel.as_ref())?;
        let mut sampler = Sampler::new(options.sampling);
        prompt.iter().for_each(|&t| sampler.accept(t));
        Ok(Prepared {
            prompt: prompt.to_vec(),
            sampler,
            logits: pre.logits,
            prompt_tokens: prompt.len(),
            prefilled_tokens: pre.evaluated,
            prompt_secs: t0.elapsed().as_secs_f64(),
        })
    }
}

impl<'s> TextStream<'s> {
    /// The stream that generates after a prepared prompt.
    pub(super) fn new(
        session: &'s mut Session,
        prepared: Prepared,
        options: &GenerateOptions,
        chat: Option<ChatTurn>,
    ) -> Self {
        Self {
            prompt: prepared.prompt,
            chat,
            session,
            matcher: StopMatcher::new(&options.stop),
            options: options.clone(),
            sampler: prepared.sampler,
            stop: prepared.logits.is_none().then_some(StopReason::Cancelled),
            logits: prepared.logits,
            joiner: Utf8Joiner::default(),
            tokens: Vec::new(),
            text: String::new(),
            failed: false,
            prompt_tokens: prepared.prompt_tokens,
            prefilled_tokens: prepared.prefilled_tokens,
            prompt_secs: prepared.prompt_secs,
            gen_start: Instant::now(),
            gen_secs: 0.0,
        }
    }

    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs the generation to its end (passing over pieces not yet taken)
    /// and returns what it produced. After the stream has returned an error,
    /// this is an error too.
    pub fn finish(mut self) -> Result<Completion, EngineError> {
        for piece in self.by_ref() {
            piece?;
        }
        // The loop ends with a stop, or after an error the stream already gave.
        let stop = self.stop.ok_or_else(|| {
            ModelError::Invalid("the generation failed (the stream returned the error)".into())
        })?;
        Ok(Completion {
            text: self.text.clone(),
            tokens: self.tokens.clone(),
            stop,
            prompt_tokens: self.prompt_tokens,
            prefilled_tokens: self.prefilled_tokens,
            prompt_secs: self.prompt_secs,
            gen_secs: self.gen_secs,
        })
    }

    /// Ends generation for `reason`; returns the text that was held back.
    fn end(&mut self, reason: StopReason) -> String {
        self.stop = Some(reason);
        self.logits = None;
        self.gen_secs = self.gen_start.elapsed().as_secs_f64();
        let tail = self.joiner.finish();
        let m = self.matcher.push(&tail);
        match m.stop {
            Some(i) => {
                self.stop = Some(StopReason::StopString(i));
                m.emit
            }
            None => m.emit + &self.matcher.finish(),
        }
    }

    /// One decode step: sample a token, turn it into text, evaluate it.
    /// Returns the text that may be emitted (possibly empty).
    fn step(&mut self) -> Result<String, EngineError> {
        if self
            .options
            .cancel
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
        {
            return Ok(self.end(StopReason::Cancelled));
        }
        if self
            .options
            .max_tokens
            .is_some_and(|n| self.tokens.len() >= n)
        {
            return Ok(self.end(StopReason::Length));
        }
        let Some(logits) = &self.logits else {
            return Ok(self.end(StopReason::Cancelled));
        };
        let token = self
            .sampler
            .sample(logits)
            .ok_or_else(|| ModelError::Invalid("the model returned no logits".into()))?;
        self.sampler.accept(token);
        let tokenizer = &self.session.shared.tokenizer;
        if self.options.stop_at_eos && tokenizer.is_eog(token) {
            return Ok(self.end(StopReason::EndOfGeneration(token)));
        }
        self.tokens.push(token);
        let text = self.joiner.push(&tokenizer.token_to_piece(token));
        let m = self.matcher.push(&text);
        if let Some(i) = m.stop {
            self.end(StopReason::StopString(i));
            return Ok(m.emit);
        }
        let mut piece = m.emit;
        if self
            .options
            .max_tokens
            .is_some_and(|n| self.tokens.len() >= n)
        {
            piece += &self.end(StopReason::Length);
            return Ok(piece);
        }
        let pos = self.session.cached.len();
        if pos >= self.session.n_ctx() {
            piece += &self.end(StopReason::ContextFull);
            return Ok(piece);
        }
        self.logits = Some(self.session.forward.forward(&[token], pos, Logits::Last)?);
        self.session.cached.push(token);
        Ok(piece)
    }
}

impl Iterator for TextStream<'_> {
    type Item = Result<String, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.stop.is_none() && !self.failed {
            match self.step() {
                Ok(piece) => {
                    self.text.push_str(&piece);
                    if !piece.is_empty() {
                        return Some(Ok(piece));
                    }
                }
                Err(e) => {
                    self.failed = true;
                    self.gen_secs = self.gen_start.elapsed().as_secs_f64();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Drop for TextStream<'_> {
    fn drop(&mut self) {
        let Some(chat) = self.chat.take() else {
            return;
        };
        // The next turn can extend this turn's tokens only if they are exactly
        // the reply's text (not after a stop string, an error or an early drop).
        let tokenizer = &self.session.shared.tokenizer;
        let exact = !self.failed
            && self
                .stop
                .is_some_and(|s| !matches!(s, StopReason::StopString(_)))
            && self
                .tokens
                .iter()
                .flat_map(|&t| tokenizer.token_to_piece(t))
                .eq(self.text.bytes());
        self.session.last_chat = exact.then(|| ChatState {
            text: chat.prompt_text + &self.text,
            tokens: [self.prompt.as_slice(), &self.tokens].concat(),
        });
        if chat.record_reply {
            let reply = ChatMessage::new("assistant", std::mem::take(&mut self.text));
            self.session.history.push(reply);
        }
    }
}

impl Session {
    /// Starts generating after `prompt` (tokenized with the model's BOS and
    /// with special tokens parsed) and returns the text pieces as an iterator.
    pub fn stream(
        &mut self,
        prompt: &str,
        options: &GenerateOptions,
    ) -> Result<TextStream<'_>, EngineError> {
        let tokens = self.shared.tokenizer.encode(prompt, true, true)?;
        self.stream_tokens(&tokens, options)
    }

    /// Starts generating after `tokens`, used exactly as given.
    pub fn stream_tokens(
        &mut self,
        tokens: &[u32],
        options: &GenerateOptions,
    ) -> Result<TextStream<'_>, EngineError> {
        let prepared = self.prepare(tokens, options)?;
        Ok(TextStream::new(self, prepared, options, None))
    }

    /// Generates after `prompt`, passing each text piece to `on_text` as it comes.
    pub fn generate(
        &mut self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: impl FnMut(&str),
    ) -> Result<Completion, EngineError> {
        drive(self.stream(prompt, options)?, on_text)
    }

    /// Generates after `tokens` (used exactly as given), passing each text
    /// piece to `on_text`.
    pub fn generate_tokens(
        &mut self,
        tokens: &[u32],
        options: &GenerateOptions,
        on_text: impl FnMut(&str),
    ) -> Result<Completion, EngineError> {
        drive(self.stream_tokens(tokens, options)?, on_text)
    }
}

/// Feeds every piece of `stream` to `on_text` and returns the completion.
pub(super) fn drive(
    mut stream: TextStream<'_>,
    mut on_text: impl FnMut(&str),
) -> Result<Completion, EngineError> {
    for piece in stream.by_ref() {
        on_text(&piece?);
    }
    stream.finish()
}

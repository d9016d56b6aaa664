//! Chat on a session: conversations rendered through the model's chat
//! template. The KV cache carries over from turn to turn: each prompt is the
//! whole conversation, its tokens extend the previous turn's tokens where the
//! text does, and only what follows the cached prefix runs.

use super::stream::{ChatTurn, Completion, GenerateOptions, TextStream, drive};
use super::{EngineError, Session};
use crate::chat_template::ChatMessage;
use crate::tokenizer::TokenAttr;

/// A chat prompt with its reply: the text, and the tokens that were
/// evaluated (or sampled) for it.
#[derive(Debug, Clone)]
pub(super) struct ChatState {
    pub(super) text: String,
    pub(super) tokens: Vec<u32>,
}

impl Session {
    /// The prompt tokens for `messages`: the chat template rendered with the
    /// assistant's reply opened, special tokens parsed, and BOS prepended
    /// where the model adds one and the template did not write it.
    ///
    /// When the text extends the previous chat turn's prompt and reply, and
    /// what it adds starts with a special token (an end-of-turn marker), the
    /// previous turn's tokens are kept as they were generated and only the
    /// added text is tokenized. A model's reply need not be the tokenization
    /// its own text would get, and this keeps the whole turn in the cache.
    pub fn chat_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        Ok(self.chat_prompt(messages)?.1)
    }

    fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<(String, Vec<u32>), EngineError> {
        let text = self.shared.template()?.render(messages, true)?;
        let tokenizer = &self.shared.tokenizer;
        if let Some(last) = &self.last_chat
            && let Some(added) = text.strip_prefix(last.text.as_str())
        {
            let more = tokenizer.encode(added, false, true)?;
            let special = TokenAttr::CONTROL | TokenAttr::USER_DEFINED;
            if more
                .first()
                .and_then(|&t| tokenizer.token_attr(t))
                .is_some_and(|a| a.has(special))
            {
                let tokens = [last.tokens.as_slice(), &more].concat();
                return Ok((text, tokens));
            }
        }
        let mut tokens = tokenizer.encode(&text, false, true)?;
        if let Some(bos) = tokenizer.bos().filter(|_| tokenizer.add_bos())
            && tokens.first() != Some(&bos)
        {
            tokens.insert(0, bos);
        }
        Ok((text, tokens))
    }

    /// Starts the assistant's reply to `messages` (the whole conversation) and
    /// returns its text pieces as an iterator. The session's own history is
    /// not touched.
    pub fn chat_stream(
        &mut self,
        messages: &[ChatMessage],
        options: &GenerateOptions,
    ) -> Result<TextStream<'_>, EngineError> {
        let (prompt_text, tokens) = self.chat_prompt(messages)?;
        let prepared = self.prepare(&tokens, options)?;
        let turn = ChatTurn {
            prompt_text,
            record_reply: false,
        };
        Ok(TextStream::new(self, prepared, options, Some(turn)))
    }

    /// Generates the assistant's reply to `messages`, passing each text piece
    /// to `on_text`. The session's own history is not touched.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        options: &GenerateOptions,
        on_text: impl FnMut(&str),
    ) -> Result<Completion, EngineError> {
        drive(self.chat_stream(messages, options)?, on_text)
    }

    /// Adds a user message to the session's history and starts the reply.
    /// The reply joins the history when the stream is dropped; if the reply
    /// cannot start (the template fails, the prompt does not fit), the user
    /// message is taken back out and the history is as before.
    pub fn user_turn_stream(
        &mut self,
        text: &str,
        options: &GenerateOptions,
    ) -> Result<TextStream<'_>, EngineError> {
        self.history.push(ChatMessage::new("user", text));
        let prepared = self
            .chat_prompt(&self.history)
            .and_then(|(text, tokens)| Ok((text, self.prepare(&tokens, options)?)));
        match prepared {
            Ok((prompt_text, p)) => {
                let turn = ChatTurn {
                    prompt_text,
                    record_reply: true,
                };
                Ok(TextStream::new(self, p, options, Some(turn)))
            }
            Err(e) => {
                self.history.pop();
                Err(e)
            }
        }
    }

    /// Adds a user message to the history, generates the assistant's reply
    /// (passing each text piece to `on_text`) and adds it to the history.
    pub fn user_turn(
        &mut self,
        text: &str,
        options: &GenerateOptions,
        on_text: impl FnMut(&str),
    ) -> Result<Completion, EngineError> {
        drive(self.user_turn_stream(text, options)?, on_text)
    }

    /// The conversation so far (set a system prompt with
    /// [`history_mut`](Self::history_mut) before the first turn).
    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// The conversation, to edit; the next turn's prompt is rendered from it.
    pub fn history_mut(&mut self) -> &mut Vec<ChatMessage> {
        &mut self.history
    }
}

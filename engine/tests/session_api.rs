//! The embedding API (`Engine`, `Session`): seeds, stop strings,
//! cancellation, sessions sharing a model, chat reusing the KV cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model_util;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use model_util::{references, smollm2};
use seldon_engine::model::ModelError;
use seldon_engine::{
    CancelToken, ChatMessage, Engine, EngineError, EngineOptions, GenerateOptions, SamplingParams,
    Session, StopReason,
};

const _: () = {
    const fn send<T: Send>() {}
    const fn shared<T: Send + Sync>() {}
    send::<Session>();
    shared::<Engine>();
    shared::<CancelToken>();
};

fn tiny(name: &str) -> Engine {
    let path = references().join(format!("tiny/{name}/model.gguf"));
    Engine::load(path, EngineOptions::cpu()).unwrap()
}

fn sampled(seed: u64, max: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max),
        sampling: SamplingParams {
            temp: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..SamplingParams::default()
        },
        stop_at_eos: false,
        ..GenerateOptions::default()
    }
}

fn greedy(max: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(max),
        stop_at_eos: false,
        ..GenerateOptions::greedy()
    }
}

#[test]
fn same_seed_same_text_and_the_stream_matches_the_callback() {
    let engine = tiny("llama-F32");
    let mut s = engine.session().unwrap();
    let run = |s: &mut Session, seed| {
        s.generate("Hello world", &sampled(seed, 24), |_| {})
            .unwrap()
    };
    let a = run(&mut s, 11);
    assert_eq!(a.tokens.len(), 24);
    assert_eq!(a.stop, StopReason::Length);
    let b = run(&mut s, 11);
    assert_eq!((&b.tokens, &b.text, b.stop), (&a.tokens, &a.text, a.stop));
    // The repeated prompt came from the cache: only its last token ran again.
    assert_eq!(b.prefilled_tokens, 1);
    assert_ne!(a.tokens, run(&mut s, 12).tokens);
    // The iterator gives the same pieces as the callback, and they make the text.
    let mut pieces = Vec::new();
    s.generate("Hello world", &sampled(11, 24), |p| {
        pieces.push(p.to_owned())
    })
    .unwrap();
    let streamed: Vec<String> = s
        .stream("Hello world", &sampled(11, 24))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pieces, streamed);
    assert_eq!(streamed.concat(), a.text);
}

#[test]
fn a_stop_string_split_across_tokens_stops_and_is_not_emitted() {
    let engine = tiny("llama-F32");
    let mut s = engine.session().unwrap();
    let mut pieces = Vec::new();
    let full = s
        .generate("Hello world", &greedy(40), |p| pieces.push(p.to_owned()))
        .unwrap();
    assert_eq!(pieces.concat(), full.text);
    // A stop string made of the end of one piece and the start of the next
    // (pieces come one token at a time here: the random model's text is
    // mostly single characters).
    let ascii = |c: char| c.is_ascii_alphanumeric();
    let (i, stop) = (3..pieces.len() - 1)
        .find_map(|i| {
            let a = pieces[i].chars().last().filter(|&c| ascii(c))?;
            let b = pieces[i + 1].chars().next().filter(|&c| ascii(c))?;
            let stop = format!("{a}{b}");
            let at = pieces[..i].concat().len() + pieces[i].len() - 1;
            (full.text.find(&stop) == Some(at)).then_some((i, stop))
        })
        .expect("no stop string across two pieces in the greedy text");
    let options = GenerateOptions {
        stop: vec!["never appears \u{1}".into(), stop.clone()],
        ..greedy(40)
    };
    let mut got = Vec::new();
    let c = s
        .generate("Hello world", &options, |p| got.push(p.to_owned()))
        .unwrap();
    assert_eq!(c.stop, StopReason::StopString(1));
    let before = pieces[..=i].concat();
    assert_eq!(c.text, before[..before.len() - 1]);
    assert_eq!(got.concat(), c.text);
    assert!(got.iter().all(|p| !p.contains(&stop)));
    // It stopped at the token that completed the stop string.
    assert!(c.tokens.len() < full.tokens.len());
    assert_eq!(c.tokens, full.tokens[..c.tokens.len()]);
}

#[test]
fn cancelling_from_another_thread_stops_before_the_next_step() {
    let engine = tiny("llama-F32");
    let mut s = engine.session().unwrap();
    let cancel = CancelToken::new();
    let (to_canceller, requests) = mpsc::channel::<()>();
    let (to_generator, acks) = mpsc::channel::<()>();
    let remote = cancel.clone();
    let canceller = std::thread::spawn(move || {
        requests.recv().unwrap();
        remote.cancel();
        to_generator.send(()).unwrap();
    });
    let options = GenerateOptions {
        max_tokens: None,
        cancel: Some(cancel.clone()),
        ..greedy(0)
    };
    let mut n = 0;
    let c = s
        .generate("Hello world", &options, |_| {
            n += 1;
            if n == 3 {
                // Wait until the other thread has cancelled.
                to_canceller.send(()).unwrap();
                acks.recv().unwrap();
            }
        })
        .unwrap();
    canceller.join().unwrap();
    assert_eq!(c.stop, StopReason::Cancelled);
    assert_eq!(c.tokens.len(), 3, "{c:?}");
    // A cancelled token stops the next generation before it starts.
    let c = s.generate("Hello world", &options, |_| {}).unwrap();
    assert_eq!((c.stop, c.tokens.len()), (StopReason::Cancelled, 0));
    cancel.reset();
    let c = s.generate(
        "Hello world",
        &GenerateOptions {
            max_tokens: Some(2),
            ..options
        },
        |_| {},
    );
    assert_eq!(c.unwrap().stop, StopReason::Length);
}

#[test]
fn cancel_is_prompt_on_smollm2() {
    let engine = Engine::load(smollm2(), EngineOptions::cpu()).unwrap();
    let mut s = engine.session().unwrap();
    let cancel = CancelToken::new();
    let remote = cancel.clone();
    let cancelled_at = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        remote.cancel();
        Instant::now()
    });
    let options = GenerateOptions {
        max_tokens: None,
        cancel: Some(cancel),
        ..greedy(0)
    };
    let c = s.generate("Once upon a time", &options, |_| {}).unwrap();
    let done = Instant::now();
    let cancelled_at = cancelled_at.join().unwrap();
    assert_eq!(c.stop, StopReason::Cancelled);
    // One decode step at most (well under a second here) after the cancel.
    let late = done.saturating_duration_since(cancelled_at);
    assert!(late < Duration::from_secs(5), "{late:?}");
}

#[test]
fn sessions_sharing_a_model_match_one_session() {
    let engine = tiny("llama-F32");
    let alone = engine
        .session()
        .unwrap()
        .generate("The numbers", &greedy(16), |_| {})
        .unwrap();
    // Two sessions stepped in turn, each with its own cache.
    let (mut a, mut b) = (engine.session().unwrap(), engine.session().unwrap());
    let mut sa = a.stream("The numbers", &greedy(16)).unwrap();
    let mut sb = b.stream("Hello world", &greedy(16)).unwrap();
    let (mut ta, mut tb) = (String::new(), String::new());
    loop {
        let pa = sa.next().transpose().unwrap();
        let pb = sb.next().transpose().unwrap();
        ta += pa.as_deref().unwrap_or("");
        tb += pb.as_deref().unwrap_or("");
        if pa.is_none() && pb.is_none() {
            break;
        }
    }
    assert_eq!(ta, alone.text);
    assert_eq!(sa.finish().unwrap().tokens, alone.tokens);
    // And on two threads at once.
    let texts: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let engine = engine.clone();
                scope.spawn(move || {
                    let mut s = engine.session().unwrap();
                    s.generate("The numbers", &greedy(16), |_| {}).unwrap().text
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(texts, [alone.text.clone(), alone.text]);
    drop(sb);
}

#[test]
fn chat_turns_reuse_the_cache() {
    // The tiny qwen2 model has a ChatML template.
    let engine = tiny("qwen2-F32");
    let mut s = engine.session().unwrap();
    // The random model's replies are mostly invalid UTF-8; its first two
    // tokens after this prompt are "er" and "M". A reply whose text is not
    // its tokens' bytes cannot be kept as generated (the next prompt's text
    // differs), and then only the common prefix is reused.
    let first = s.user_turn("Be brief.", &greedy(2), |_| {}).unwrap();
    assert_eq!(first.text, "erM");
    assert_eq!(first.prefilled_tokens, first.prompt_tokens);
    assert_eq!(s.history().len(), 2);
    assert_eq!(s.history()[1].content, first.text);

    let cached = s.cached_tokens().to_vec();
    let mut next = s.history().to_vec();
    next.push(ChatMessage::new("user", "again"));
    let prompt = s.chat_tokens(&next).unwrap();
    let shared = cached
        .iter()
        .zip(&prompt)
        .take_while(|(a, b)| a == b)
        .count();
    // The whole first turn is reused (the reply up to its last token, which
    // was sampled but never evaluated).
    assert!(
        shared >= first.prompt_tokens + first.tokens.len() - 1,
        "{shared}"
    );
    assert_eq!(prompt[..shared], cached[..]);
    let second = s.user_turn("again", &greedy(6), |_| {}).unwrap();
    assert_eq!(second.prompt_tokens, prompt.len());
    assert_eq!(second.prefilled_tokens, prompt.len() - shared);
    assert_eq!(s.history().len(), 4);

    // The same conversation in a fresh session gives the same reply.
    let mut fresh = engine.session().unwrap();
    let again = fresh.chat(&next, &greedy(6), |_| {}).unwrap();
    assert_eq!(again.tokens, second.tokens);
    assert_eq!(again.prefilled_tokens, again.prompt_tokens);
}

#[test]
fn chat_without_a_template_fails_and_leaves_the_history() {
    let engine = tiny("llama-F32");
    let mut s = engine.session().unwrap();
    let err = s.user_turn("hi", &greedy(4), |_| {}).unwrap_err();
    assert!(matches!(err, EngineError::Template(_)), "{err}");
    assert!(s.history().is_empty());
    // A prompt longer than the context is an error, not a panic.
    let small = Engine::load(
        references().join("tiny/llama-F32/model.gguf"),
        EngineOptions {
            n_ctx: 4,
            ..EngineOptions::cpu()
        },
    )
    .unwrap();
    let err = small
        .session()
        .unwrap()
        .generate("a much longer prompt than four tokens", &greedy(4), |_| {})
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Model(ModelError::ContextFull { .. })),
        "{err}"
    );
}

#[test]
fn smollm2_chat_says_paris_and_keeps_the_cache() {
    let engine = Engine::load(smollm2(), EngineOptions::cpu()).unwrap();
    let mut s = engine.session().unwrap();
    let options = GenerateOptions {
        max_tokens: Some(24),
        ..GenerateOptions::greedy()
    };
    let first = s
        .user_turn("What is the capital of France?", &options, |_| {})
        .unwrap();
    assert!(first.text.contains("Paris"), "{first:?}");
    assert!(
        matches!(first.stop, StopReason::EndOfGeneration(_)),
        "{first:?}"
    );
    // Every token of the first turn is cached: the prompt and the reply.
    let cached = s.cached_tokens().to_vec();
    assert_eq!(cached.len(), first.prompt_tokens + first.tokens.len());
    let second = s.user_turn("And of Germany?", &options, |_| {}).unwrap();
    assert!(!second.text.trim().is_empty());
    // Only the new messages ran: the end of the reply, the user turn, the
    // assistant header.
    assert_eq!(second.prefilled_tokens, second.prompt_tokens - cached.len());
    assert!(second.prefilled_tokens < 20, "{second:?}");
}

#[test]
fn gpu_sessions_share_one_model_and_match_one_session() {
    let path = references().join("tiny/llama-F32/model.gguf");
    let options = EngineOptions {
        n_ctx: 64,
        ..EngineOptions::default()
    };
    let engine = Engine::load(path, options).unwrap();
    let alone = engine
        .session()
        .unwrap()
        .generate("The numbers", &greedy(8), |_| {})
        .unwrap();
    let (mut a, mut b) = (engine.session().unwrap(), engine.session().unwrap());
    assert_ne!(a.backend(), "cpu");
    let mut sa = a.stream("The numbers", &greedy(8)).unwrap();
    let mut sb = b.stream("Hello world", &greedy(8)).unwrap();
    while sa.next().transpose().unwrap().is_some() | sb.next().transpose().unwrap().is_some() {}
    assert_eq!(sa.finish().unwrap().tokens, alone.tokens);
    assert_eq!(sb.finish().unwrap().tokens.len(), 8);
}

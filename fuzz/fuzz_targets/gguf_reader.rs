//! Feeds arbitrary bytes to the GGUF reader. It must never panic, and what it
//! accepts must keep its promises: every tensor's data lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seldon_formats::gguf::GgufFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes(data.to_vec()) {
        let len = file.bytes().len() as u64;
        assert!(file.data_offset() <= len);
        for (key, _) in file.metadata() {
            assert!(file.get(key).is_some());
        }
        for t in file.tensors() {
            assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes);
            assert!(t.offset.is_multiple_of(file.alignment()));
            assert_eq!(file.tensor(&t.name), Some(t));
        }
    }
});

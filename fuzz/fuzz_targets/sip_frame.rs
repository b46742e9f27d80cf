//! Stream framing: never panics, never past the buffer, always progresses.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cti_server_fuzz::check_frame(data));

#[cfg(all(feature = "afl", not(feature = "libfuzzer")))]
fn main() {
    afl::fuzz!(|data: &[u8]| cti_server_fuzz::check_frame(data));
}

#[cfg(not(any(feature = "libfuzzer", feature = "afl")))]
fn main() {
    // Replay mode: `cargo run --no-default-features --bin sip_frame -- FILE...`.
    for path in std::env::args().skip(1) {
        cti_server_fuzz::check_frame(&std::fs::read(&path).expect("readable input"));
    }
}

//! parse → print → parse must give the same message (datagram semantics).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cti_server_fuzz::check_message(data));

#[cfg(all(feature = "afl", not(feature = "libfuzzer")))]
fn main() {
    afl::fuzz!(|data: &[u8]| cti_server_fuzz::check_message(data));
}

#[cfg(not(any(feature = "libfuzzer", feature = "afl")))]
fn main() {
    // Replay mode: `cargo run --no-default-features --bin sip_message -- FILE...`.
    for path in std::env::args().skip(1) {
        cti_server_fuzz::check_message(&std::fs::read(&path).expect("readable input"));
    }
}

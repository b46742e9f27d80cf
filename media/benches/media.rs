//! Per-frame costs of the media hot path (one 20 ms frame at 8 kHz unless said otherwise).
//! Run: `cargo bench -p media -- --warm-up-time 1 --measurement-time 2`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use media::codec::g711;
use media::codec::{Codec, Decoder, Encoder};
use media::engine::{Leg, LegConfig};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::mixer::Room;
use media::recorder::{Recorder, RecorderConfig};
use media::rtp::{PayloadType, RtpHeader, Ssrc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A vowel-like test frame sequence: harmonics of a gliding 150 Hz fundamental.
fn speech(n: usize) -> Vec<i16> {
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let f0 = 150.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / 8000.0;
            let v: f64 = (1..20)
                .map(|h| {
                    (phase * h as f64).sin() / (1.0 + ((f0 * h as f64 - 700.0) / 300.0).powi(2))
                })
                .sum();
            (v * 6000.0) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let frame = speech(160);
    let mut enc = Vec::with_capacity(160);
    let mut dec = Vec::with_capacity(160);
    c.bench_function("g711_ulaw_encode_decode_20ms", |b| {
        b.iter(|| {
            enc.clear();
            dec.clear();
            g711::encode_ulaw(black_box(&frame), &mut enc);
            g711::decode_ulaw(black_box(&enc), &mut dec);
            black_box(&dec);
        })
    });
    c.bench_function("g711_alaw_encode_decode_20ms", |b| {
        b.iter(|| {
            enc.clear();
            dec.clear();
            g711::encode_alaw(black_box(&frame), &mut enc);
            g711::decode_alaw(black_box(&enc), &mut dec);
            black_box(&dec);
        })
    });
}

fn mixer(c: &mut Criterion) {
    // Customer and agent bridged, supervisor listening: three outputs per tick.
    let mut room = Room::new();
    let customer = room.join();
    let agent = room.join();
    let sup = room.join();
    room.bridge(customer, agent).unwrap();
    room.listen(sup, &[customer, agent]).unwrap();
    let a = speech(160);
    let b: Vec<i16> = speech(320)[160..].to_vec();
    let s = vec![0i16; 160];
    room.mix();
    c.bench_function("mixer_3_party_room_20ms", |bench| {
        bench.iter(|| {
            room.put_frame(customer, black_box(&a)).unwrap();
            room.put_frame(agent, black_box(&b)).unwrap();
            room.put_frame(sup, black_box(&s)).unwrap();
            room.mix();
            black_box(room.output(sup).unwrap());
        })
    });
}

fn jitter(c: &mut Criterion) {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let payload = vec![0xD5u8; 160];
    let t0 = Instant::now();
    let mut seq: u16 = 0;
    // Prime to the target depth.
    for _ in 0..2 {
        let h = RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            sequence: seq,
            timestamp: seq as u32 * 160,
            ssrc: Ssrc(1),
        };
        jb.push(t0, &h, &payload);
        seq = seq.wrapping_add(1);
    }
    let mut now = t0;
    c.bench_function("jitter_buffer_push_pop_20ms", |b| {
        b.iter(|| {
            now += Duration::from_millis(20);
            let h = RtpHeader {
                marker: false,
                payload_type: PayloadType::PCMU,
                sequence: seq,
                timestamp: (seq as u32).wrapping_mul(160),
                ssrc: Ssrc(1),
            };
            seq = seq.wrapping_add(1);
            jb.push(now, &h, black_box(&payload));
            match jb.pop(now) {
                Playout::Frame { payload, .. } => {
                    black_box(payload);
                }
                other => {
                    black_box(other);
                }
            }
        })
    });
}

fn opus(c: &mut Criterion) {
    let signal = speech(8000);
    let frames: Vec<&[i16]> = signal.chunks(160).collect();
    let mut enc = Encoder::new(Codec::Opus).unwrap();
    let mut packets = Vec::new();
    for f in &frames {
        let mut p = Vec::new();
        enc.encode(f, &mut p).unwrap();
        packets.push(p);
    }
    let mut i = 0;
    let mut out = Vec::with_capacity(200);
    c.bench_function("opus_encode_8k_speech_20ms", |b| {
        b.iter(|| {
            out.clear();
            enc.encode(black_box(frames[i % frames.len()]), &mut out)
                .unwrap();
            i += 1;
            black_box(&out);
        })
    });
    let mut dec = Decoder::new(Codec::Opus).unwrap();
    let mut pcm = Vec::with_capacity(960);
    let mut j = 0;
    c.bench_function("opus_decode_8k_speech_20ms", |b| {
        b.iter(|| {
            pcm.clear();
            dec.decode(black_box(&packets[j % packets.len()]), &mut pcm)
                .unwrap();
            j += 1;
            black_box(&pcm);
        })
    });
}

fn recorder(c: &mut Criterion) {
    // Frames go in batches of 5000 (100 s of audio, a 3.2 MB file) to a fresh recorder
    // that is then finished: the queue holds a whole batch so the bench, which produces far
    // faster than real time, never overruns, and the disk holds one file at a time.
    let dir = std::env::temp_dir().join(format!("media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.wav");
    let a = speech(160);
    let b = vec![100i16; 160];
    const BATCH: u64 = 5000;
    let run = |iters: u64, include_writer: bool| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            let cfg = RecorderConfig {
                queue_frames: BATCH as usize,
                ..RecorderConfig::default()
            };
            let mut rec = Recorder::create(&path, cfg).unwrap();
            let start = Instant::now();
            for _ in 0..n {
                rec.write(black_box(&a), black_box(&b)).unwrap();
            }
            let queued = start.elapsed();
            let summary = rec.finish().unwrap();
            assert_eq!(summary.overrun_samples, 0);
            total += if include_writer {
                start.elapsed()
            } else {
                queued
            };
        }
        total
    };
    // The audio path's cost: interleave and enqueue.
    c.bench_function("recorder_stereo_enqueue_20ms", |bench| {
        bench.iter_custom(|iters| run(iters, false))
    });
    // Amortised including the writer thread and the disk (wall time until finished).
    c.bench_function("recorder_stereo_amortised_20ms", |bench| {
        bench.iter_custom(|iters| run(iters, true))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn relay(c: &mut Criterion) {
    // One RTP packet from phone A through leg A (parse, stats, jitter buffer, decode), the
    // room, and leg B (encode, RTP header, transmit queue): the engine's per-packet CPU
    // work without the two socket system calls.
    let t0 = Instant::now();
    let phone_a: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let phone_b: SocketAddr = "192.0.2.20:4000".parse().unwrap();
    let mut leg_a = Leg::new(LegConfig::new(Codec::Pcmu), t0, Ssrc(1), 0, 0).unwrap();
    let mut cfg_b = LegConfig::new(Codec::Pcmu);
    cfg_b.remote = Some(phone_b);
    let mut leg_b = Leg::new(cfg_b, t0, Ssrc(2), 0, 0).unwrap();
    let mut room = Room::new();
    let pa = room.join();
    let pb = room.join();
    room.bridge(pa, pb).unwrap();
    let mut payload = Vec::new();
    g711::encode_ulaw(&speech(160), &mut payload);
    let mut seq: u16 = 0;
    let mut now = t0;
    let mut datagram = Vec::new();
    c.bench_function("engine_relay_rtp_packet_sans_io", |b| {
        b.iter(|| {
            now += Duration::from_millis(20);
            RtpHeader {
                marker: false,
                payload_type: PayloadType::PCMU,
                sequence: seq,
                timestamp: (seq as u32).wrapping_mul(160),
                ssrc: Ssrc(99),
            }
            .write(&payload, &mut datagram);
            seq = seq.wrapping_add(1);
            leg_a
                .handle_datagram(now, phone_a, black_box(&datagram))
                .unwrap();
            let frame = leg_a.receive_frame(now);
            room.put_frame(pa, &frame).unwrap();
            room.mix();
            leg_b.send_frame(room.output(pb).unwrap()).unwrap();
            black_box(leg_b.poll_transmit());
            while leg_a.poll_event().is_some() {}
        })
    });
}

fn udp(c: &mut Criterion) {
    // The two system calls the engine adds per relayed packet (one recv, one send), on
    // loopback, to put the sans-IO relay figure in context.
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = b.local_addr().unwrap();
    let packet = [0u8; 172];
    let mut buf = [0u8; 2048];
    c.bench_function("udp_loopback_send_and_recv_172_bytes", |bench| {
        bench.iter(|| {
            a.send_to(black_box(&packet), to).unwrap();
            black_box(b.recv_from(&mut buf).unwrap());
        })
    });
}

criterion_group!(benches, g711, mixer, jitter, opus, recorder, relay, udp);
criterion_main!(benches);

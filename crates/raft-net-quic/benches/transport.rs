//! Round trips over loopback: QUIC + TLS (the client request layer) against plain TCP with
//! the same length-prefixed postcard framing, for 100 B and 64 KiB payloads, so the cost
//! of QUIC and TLS shows as a ratio. Throughput is payload bytes one way per round trip.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::NodeId;
use raft_net_quic::certs::CertificateAuthority;
use raft_net_quic::frame::{FrameDecoder, encode_frame};
use raft_net_quic::{
    Caller, ClientId, NetConfig, QuicNode, RequestHandler, RpcClient, RpcClientConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX: u32 = 4 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

struct Echo;

impl RequestHandler for Echo {
    async fn handle(&self, _caller: Caller, request: Bytes) -> Bytes {
        request
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn quic_pair() -> (QuicNode, RpcClient) {
    let ca = CertificateAuthority::new("bench CA").unwrap();
    let node_identity = ca.issue_node(NodeId(1)).unwrap().identity;
    let (node, _transport) =
        QuicNode::bind(NetConfig::new("bench", NodeId(1), loopback()), &node_identity).unwrap();
    node.serve_requests(Echo);
    let mut config = RpcClientConfig::new("bench", Caller::Client(ClientId(1)));
    config.bind_addr = loopback();
    let identity = ca.issue_client(ClientId(1)).unwrap().identity;
    let client =
        RpcClient::connect(&config, &identity, node.local_addr().unwrap(), Some(NodeId(1)))
            .await
            .unwrap();
    (node, client)
}

/// Reads one frame of `Bytes` from a TCP stream.
async fn read_frame(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    buffer: &mut [u8],
) -> Bytes {
    loop {
        if let Some(value) = decoder.next::<Bytes>("bench").unwrap() {
            return value;
        }
        let read = stream.read(buffer).await.unwrap();
        assert!(read > 0, "peer closed");
        decoder.push(&buffer[..read]);
    }
}

async fn tcp_pair() -> TcpStream {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut decoder = FrameDecoder::new(MAX);
        let mut buffer = vec![0_u8; 128 << 10];
        loop {
            let request = read_frame(&mut stream, &mut decoder, &mut buffer).await;
            let frame = encode_frame(&request, "bench", MAX).unwrap();
            if stream.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn round_trips(criterion: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (node, client) = runtime.block_on(quic_pair());
    let mut tcp = runtime.block_on(tcp_pair());
    let mut decoder = FrameDecoder::new(MAX);
    let mut buffer = vec![0_u8; 128 << 10];

    let mut group = criterion.benchmark_group("round_trip");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for size in [100_usize, 64 << 10] {
        let payload = Bytes::from(vec![0x5A_u8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("quic_tls", size), &payload, |bencher, payload| {
            bencher.iter_custom(|iterations| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let response = client.call(payload.clone(), TIMEOUT).await.unwrap();
                        assert_eq!(response.len(), payload.len());
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_with_input(
            BenchmarkId::new("tcp_plain", size),
            &payload,
            |bencher, payload| {
                bencher.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iterations {
                            let frame = encode_frame(payload, "bench", MAX).unwrap();
                            tcp.write_all(&frame).await.unwrap();
                            let response = read_frame(&mut tcp, &mut decoder, &mut buffer).await;
                            assert_eq!(response.len(), payload.len());
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
    client.close();
    runtime.block_on(node.shutdown());
}

criterion_group!(benches, round_trips);
criterion_main!(benches);

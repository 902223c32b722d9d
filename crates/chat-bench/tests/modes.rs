//! Each mode against a real server in this process, on 127.0.0.1:0, with tiny
//! parameters, over TCP, (`--transport ws`) through the server's web door and
//! (`--protocol irc`) through its IRC door. Every wait is bounded; nothing sleeps.

use chat_bench::{Cli, Mode};
use chat_server::{Config, Server};
use clap::Parser;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The longest a whole test run may take.
const WAIT: Duration = Duration::from_secs(30);

/// A server on free loopback ports; it stops when the guard is dropped.
struct TestServer {
    /// The native protocol over TCP.
    addr: SocketAddr,
    /// The web door, for `--transport ws`.
    http: SocketAddr,
    /// The IRC door, for `--protocol irc`.
    irc: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(config: Config) -> TestServer {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = chat_server::listen(loopback, config.listen_backlog()).unwrap();
    let addr = listener.local_addr().unwrap();
    let http_listener = chat_server::listen(loopback, config.listen_backlog()).unwrap();
    let http = http_listener.local_addr().unwrap();
    let irc_listener = chat_server::listen(loopback, config.listen_backlog()).unwrap();
    let irc = irc_listener.local_addr().unwrap();
    let listeners = chat_server::Listeners {
        tcp: Some(listener),
        http: Some(http_listener),
        irc: Some(irc_listener),
        ..Default::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::new(config)
            .expect("server starts")
            .serve(listeners, async {
                let _ = stopped.await;
            })
            .await
    });
    TestServer {
        addr,
        http,
        irc,
        _stop: stop,
    }
}

/// Benchmarks need the server's flood control off.
fn unthrottled() -> Config {
    Config {
        flood_rate: 0.0,
        ..Config::default()
    }
}

fn cli(server: &TestServer, args: &str) -> Cli {
    cli_at(server.addr, args)
}

/// The same through the server's WebSocket.
fn cli_ws(server: &TestServer, args: &str) -> Cli {
    cli_at(server.http, &format!("{args} --transport ws"))
}

/// The same in IRC, through the server's IRC door.
fn cli_irc(server: &TestServer, args: &str) -> Cli {
    cli_at(server.irc, &format!("{args} --protocol irc"))
}

/// `addr` may be a list of addresses (`A,B`).
fn cli_at(addr: impl std::fmt::Display, args: &str) -> Cli {
    let addr = addr.to_string();
    let mut argv = vec!["chat-bench"];
    let mut words = args.split_whitespace();
    argv.extend(words.next());
    argv.extend(["--addr", &addr, "--no-progress", "--timeout", "10s"]);
    argv.extend(words);
    Cli::try_parse_from(argv).expect("valid arguments")
}

/// Runs the CLI's mode through `chat_bench::run` and returns its JSON line, parsed.
async fn json_of(cli: &Cli) -> Value {
    let report = tokio::time::timeout(WAIT, chat_bench::run(cli))
        .await
        .expect("the run ends in time")
        .expect("the run succeeds");
    let line = report.json_line();
    assert!(!line.contains('\n'));
    assert!(report.to_string().ends_with(&line));
    serde_json::from_str(&line).expect("the JSON line parses")
}

fn assert_keys(json: &Value, keys: &[&str]) {
    for key in keys {
        assert!(json.get(key).is_some(), "no {key:?} in {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_delivers_every_message_to_every_member() {
    let server = start(unthrottled()).await;
    let cli = cli(
        &server,
        "throughput --members 5 --senders 2 --messages 20 --size 64",
    );
    let Mode::Throughput(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::throughput::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.sent, 40);
    assert_eq!(result.expected, 200);
    assert_eq!(result.delivered, 200);
    assert_eq!(result.lost, 0);
    assert_eq!(result.lagged, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 200);
    assert!(result.latency.p50_us > 0.0 && result.latency.p50_us <= result.latency.max_us);
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);

    // A second run in the same room, right after the first: nothing of the first (its
    // members' QUITs, if they come late) may count in it.
    let json = json_of(&cli).await;
    assert_eq!(json["disconnected"], Value::Array(vec![]), "{json}");
    assert_eq!(json["mode"], "throughput");
    assert_eq!(json["params"]["members"], 5);
    assert_eq!(json["params"]["room"], "#bench");
    assert_eq!(json["delivered"], 200);
    assert_eq!(json["lost"], 0);
    assert_keys(
        &json,
        &[
            "msgs_per_sec",
            "lagged",
            "out_of_order",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "elapsed_s",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_a_window_waits_for_echoes() {
    let server = start(unthrottled()).await;
    let cli = cli(
        &server,
        "throughput --members 4 --senders 2 --messages 50 --window 3",
    );
    let Mode::Throughput(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::throughput::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.delivered, 400);
    assert_eq!(result.lost, 0);
    assert_eq!(result.out_of_order, 0);
    assert_eq!(result.window_timeouts, 0);
    assert!(!result.timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_sends_on_schedule_and_loses_nothing() {
    let server = start(unthrottled()).await;
    let cli = cli(
        &server,
        "rate --members 5 --senders 2 --rate 50 --duration 1s --size 80",
    );
    let Mode::Rate(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::rate::run(args))
        .await
        .unwrap()
        .unwrap();
    // 25 messages each: due at 0, 40, ... 960 ms (and 20, 60, ... 980 ms).
    assert_eq!(result.sent, 50);
    assert_eq!(result.expected, 250);
    assert_eq!(result.delivered, 250);
    assert_eq!(result.lost, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 250);
    assert!(result.flooders.is_empty());
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);

    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["mode"], "rate");
    assert_eq!(json["params"]["duration_s"], 1.0);
    assert_eq!(json["offered_deliveries_per_sec"], 250.0);
    assert_keys(
        &json,
        &[
            "delivered",
            "lost",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "max_send_lag_us",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_over_websocket_delivers_every_message_to_every_member() {
    let server = start(unthrottled()).await;
    // Enough messages that each sender's lines go out in several batches.
    let cli = cli_ws(
        &server,
        "throughput --members 6 --senders 3 --messages 400 --size 100",
    );
    let Mode::Throughput(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::throughput::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.sent, 1200);
    assert_eq!(result.expected, 7200);
    assert_eq!(result.delivered, 7200);
    assert_eq!(result.lost, 0);
    assert_eq!(result.lagged, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 7200);
    assert!(result.latency.p50_us > 0.0 && result.latency.p99_us <= result.latency.max_us);
    assert!(result.msgs_per_sec > 0.0);
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);

    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["params"]["transport"], "ws");
    assert_eq!(json["params"]["addr"], server.http.to_string());

    // With a window, the senders wait for their echoes through the WebSocket too.
    let cli = cli_ws(
        &server,
        "throughput --members 4 --senders 2 --messages 50 --window 3",
    );
    let json = json_of(&cli).await;
    assert_eq!(json["delivered"], 400, "{json}");
    assert_eq!(json["lost"], 0);
    assert_eq!(json["window_timeouts"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_over_websocket_sends_on_schedule_and_loses_nothing() {
    let server = start(unthrottled()).await;
    let cli = cli_ws(
        &server,
        "rate --members 5 --senders 2 --rate 50 --duration 1s --size 80",
    );
    let Mode::Rate(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::rate::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.sent, 50);
    assert_eq!(result.expected, 250);
    assert_eq!(result.delivered, 250);
    assert_eq!(result.lost, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 250);
    // Loopback, 250 deliveries a second: far below a second each.
    assert!(result.latency.p99_us < 1e6, "{:?}", result.latency);
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);
    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["params"]["transport"], "ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_idle_and_churn() {
    let server = start(unthrottled()).await;
    let pid = std::process::id().to_string();
    let cli = cli_ws(
        &server,
        &format!("idle --connections 20 --in-room --server-pid {pid}"),
    );
    let json = json_of(&cli).await;
    assert_eq!(json["connections"], 20, "{json}");
    assert!(json["rss_per_conn_bytes"].is_number(), "{json}");
    assert_eq!(json["disconnected"], Value::Array(vec![]));

    let json = json_of(&cli_ws(&server, "churn --duration 500ms --concurrency 2")).await;
    assert!(json["cycles"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_refusals_at_the_server_limit_are_counted() {
    let server = start(Config {
        max_connections: Some(5),
        ..unthrottled()
    })
    .await;
    let json = json_of(&cli_ws(
        &server,
        "idle --connections 8 --connect-concurrency 8 --allow-refused",
    ))
    .await;
    assert_eq!(json["connections"], 5, "{json}");
    assert_eq!(json["refused"], 3, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_at_the_wrong_port_or_in_burst_is_an_error() {
    let server = start(unthrottled()).await;
    // The TCP port does not speak HTTP.
    let cli = cli_at(server.addr, "idle --connections 1 --transport ws");
    let error = tokio::time::timeout(WAIT, chat_bench::run(&cli))
        .await
        .unwrap()
        .unwrap_err();
    assert!(format!("{error:#}").contains("WebSocket"), "{error:#}");
    let cli = cli_ws(&server, "burst --connections 1");
    let error = chat_bench::run(&cli).await.unwrap_err();
    assert!(format!("{error:#}").contains("--transport ws"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_over_irc_delivers_every_message_to_every_other_member() {
    let server = start(unthrottled()).await;
    let cli = cli_irc(
        &server,
        "throughput --members 6 --senders 3 --messages 400 --size 100",
    );
    let Mode::Throughput(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::throughput::run(args))
        .await
        .unwrap()
        .unwrap();
    // A sender does not get its own messages over IRC: each reaches 5 of the 6.
    assert_eq!(result.sent, 1200);
    assert_eq!(result.expected, 6000);
    assert_eq!(result.delivered, 6000);
    assert_eq!(result.lost, 0);
    assert_eq!(result.lagged, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 6000);
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);
    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["params"]["protocol"], "irc");
    assert_eq!(json["params"]["transport"], "tcp");

    // Every member a sender: each waits for the others' end markers only.
    let json = json_of(&cli_irc(
        &server,
        "throughput --members 3 --senders 3 --messages 10",
    ))
    .await;
    assert_eq!(json["expected"], 60, "{json}");
    assert_eq!(json["delivered"], 60, "{json}");
    assert_eq!(json["timed_out"], false, "{json}");

    // A lone sender has nobody to deliver to, and does not wait for itself.
    let json = json_of(&cli_irc(
        &server,
        "throughput --members 1 --senders 1 --messages 10",
    ))
    .await;
    assert_eq!(json["expected"], 0, "{json}");
    assert_eq!(json["timed_out"], false, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_and_native_members_share_the_room() {
    // A native run and an IRC run at once in one room, with different run ids: neither
    // counts the other's messages.
    let server = start(unthrottled()).await;
    let native = cli(&server, "throughput --members 4 --senders 2 --messages 100");
    let irc = cli_irc(&server, "throughput --members 4 --senders 2 --messages 100");
    let (native, irc) = tokio::join!(json_of(&native), json_of(&irc));
    assert_eq!(native["delivered"], 800, "{native}");
    assert_eq!(native["lost"], 0, "{native}");
    assert_eq!(irc["delivered"], 600, "{irc}");
    assert_eq!(irc["lost"], 0, "{irc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_over_irc_sends_on_schedule_and_loses_nothing() {
    let server = start(unthrottled()).await;
    let cli = cli_irc(
        &server,
        "rate --members 5 --senders 2 --rate 50 --duration 1s --size 80",
    );
    let Mode::Rate(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::rate::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.sent, 50);
    assert_eq!(result.expected, 200);
    assert_eq!(result.delivered, 200);
    assert_eq!(result.lost, 0);
    assert_eq!(result.out_of_order, 0);
    assert!(!result.timed_out);
    assert_eq!(result.latency.samples, 200);
    assert!(result.disconnected.is_empty(), "{:?}", result.disconnected);
    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["offered_deliveries_per_sec"], 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_connections_idle_and_churn() {
    let server = start(unthrottled()).await;
    let pid = std::process::id().to_string();
    for room in ["", " --in-room"] {
        let cli = cli_irc(
            &server,
            &format!("idle --connections 20{room} --server-pid {pid}"),
        );
        let json = json_of(&cli).await;
        assert_eq!(json["connections"], 20, "{json}");
        assert!(json["rss_per_conn_bytes"].is_number(), "{json}");
        assert_eq!(json["disconnected"], Value::Array(vec![]));
    }
    let json = json_of(&cli_irc(&server, "churn --duration 500ms --concurrency 2")).await;
    assert!(json["cycles"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_refusals_at_the_server_limit_are_counted() {
    let server = start(Config {
        max_connections: Some(5),
        ..unthrottled()
    })
    .await;
    let json = json_of(&cli_irc(
        &server,
        "idle --connections 8 --connect-concurrency 8 --allow-refused",
    ))
    .await;
    assert_eq!(json["connections"], 5, "{json}");
    assert_eq!(json["refused"], 3, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_combinations_that_make_no_sense_are_refused() {
    let server = start(unthrottled()).await;
    for (args, says) in [
        ("idle --connections 1 --transport ws", "--transport ws"),
        ("burst --connections 1", "--protocol irc"),
        ("throughput --members 2 --senders 1 --window 3", "--window"),
        ("rate --members 2 --senders 1 --flooders 1", "--flooders"),
    ] {
        let error = tokio::time::timeout(WAIT, chat_bench::run(&cli_irc(&server, args)))
            .await
            .unwrap()
            .unwrap_err();
        assert!(format!("{error:#}").contains(says), "{args}: {error:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_reports_flooders_and_disconnected_stalled_members() {
    for transport in ["tcp", "ws"] {
        stalled_members_and_flooders(transport).await;
    }
}

async fn stalled_members_and_flooders(transport: &str) {
    // A short write timeout, so that the member that never reads is disconnected
    // within the run.
    let server = start(Config {
        write_timeout: Duration::from_millis(300),
        ..unthrottled()
    })
    .await;
    let args =
        "rate --members 4 --senders 2 --rate 40 --duration 1s --stalled 1 --flooders 1 --size 200";
    let cli = match transport {
        "ws" => cli_ws(&server, args),
        _ => cli(&server, args),
    };
    let Mode::Rate(args) = &cli.mode else {
        unreachable!()
    };
    let result = tokio::time::timeout(WAIT, chat_bench::rate::run(args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.stalled, 1, "{transport}");
    assert_eq!(result.flooders.len(), 1);
    let flooder = &result.flooders[0];
    assert!(flooder.accepted > 0, "{transport}: {flooder:?}");
    assert!(
        flooder.written >= flooder.accepted,
        "{transport}: {flooder:?}"
    );
    assert!(result.flood_received > 0, "{transport}");
    assert!(!result.timed_out, "{transport}");
    // Every ordinary message is accounted for: delivered, or missed in a LAGGED gap.
    assert_eq!(result.sent, 40, "{transport}");
    assert!(result.delivered <= result.expected);
    let stalled: Vec<_> = result
        .disconnected
        .iter()
        .filter(|d| d.role == "stalled")
        .collect();
    assert_eq!(stalled.len(), 1, "{transport}: {:?}", result.disconnected);
    assert!(
        stalled[0].reason.starts_with("slow consumer"),
        "{transport}: {:?}",
        stalled[0]
    );
    let json = serde_json::from_str::<Value>(&result.report(args).json_line()).unwrap();
    assert_eq!(json["flooders"][0]["accepted"], flooder.accepted);
    assert_eq!(json["disconnected"][0]["role"], "stalled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_connections_and_measures_memory() {
    let server = start(unthrottled()).await;
    // The server runs in this process, so its pid is ours.
    let pid = std::process::id().to_string();
    for extra in ["", "--in-room"] {
        let cli = cli(
            &server,
            &format!("idle --connections 20 --server-pid {pid} {extra}"),
        );
        let json = json_of(&cli).await;
        assert_eq!(json["mode"], "idle");
        assert_eq!(json["connections"], 20);
        assert!(json["server_rss_after_bytes"].as_u64().unwrap() > 0);
        assert!(json["rss_per_conn_bytes"].is_number(), "{json}");
        assert_eq!(json["disconnected"], Value::Array(vec![]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_cycles_without_errors() {
    let server = start(unthrottled()).await;
    let cli = cli(&server, "churn --duration 1s --concurrency 2");
    let json = json_of(&cli).await;
    assert_eq!(json["mode"], "churn");
    assert!(json["cycles"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_keys(&json, &["cycles_per_sec", "p50_us", "p99_us", "max_us"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_a_summary_then_one_json_line() {
    let server = start(unthrottled()).await;
    let addr = server.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chat-bench"))
            .args(["throughput", "--addr", &addr, "--members", "3"])
            .args(["--senders", "1", "--messages", "10", "--timeout", "10s"])
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("throughput: 3 members"), "{stdout}");
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["delivered"], 30);
    assert_eq!(json["lost"], 0);
}

#[test]
fn bad_arguments_are_refused() {
    assert!(Cli::try_parse_from(["chat-bench", "throughput", "--room", "bench"]).is_err());
    assert!(Cli::try_parse_from(["chat-bench", "rate", "--rate", "0"]).is_err());
    assert!(Cli::try_parse_from(["chat-bench", "rate", "--duration", "soon"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_gets_nick_on_every_connection() {
    let server = start(unthrottled()).await;
    let pid = std::process::id().to_string();
    let cli = cli(
        &server,
        &format!("burst --connections 200 --in-flight 50 --server-pid {pid}"),
    );
    let json = json_of(&cli).await;
    assert_eq!(json["mode"], "burst");
    assert_eq!(json["params"]["in_flight"], 50);
    assert_eq!(json["connections"], 200);
    assert_eq!(json["got_nick"], 200, "{json}");
    assert_eq!(json["no_nick"], 0);
    assert_eq!(json["timed_out"], 0);
    assert_eq!(json["refused"], 0);
    assert_eq!(json["errors"], 0);
    assert_eq!(json["nick_latency"]["samples"], 200);
    assert_eq!(json["connect_latency"]["samples"], 200);
    let nick = &json["nick_latency"];
    assert!(nick["p50_us"].as_f64().unwrap() > 0.0, "{json}");
    assert!(nick["p999_us"].as_f64().unwrap() <= nick["max_us"].as_f64().unwrap());
    assert!(
        json["connect_latency"]["max_us"].as_f64().unwrap() <= nick["max_us"].as_f64().unwrap()
    );
    assert!(json["server_cpu_pct"].is_number(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_counts_refusals_at_the_server_limit() {
    let server = start(Config {
        max_connections: Some(4),
        ..unthrottled()
    })
    .await;
    // Every connection is held until all have their answer, so exactly 4 are served.
    let json = json_of(&cli(&server, "burst --connections 10 --in-flight 10")).await;
    assert_eq!(json["got_nick"], 4, "{json}");
    assert_eq!(json["no_nick"], 6);
    assert_eq!(json["refused"], 6);
    assert_eq!(
        json["refused_server_full"].as_u64().unwrap() + json["refused_closed"].as_u64().unwrap(),
        6
    );
    assert_eq!(json["timed_out"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_gives_up_on_a_silent_server() {
    // Accepts (the kernel does) but never says NICK.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cli = cli_at(
        addr,
        "burst --connections 3 --in-flight 2 --nick-timeout 200ms",
    );
    let json = json_of(&cli).await;
    assert_eq!(json["got_nick"], 0, "{json}");
    assert_eq!(json["no_nick"], 3);
    assert_eq!(json["timed_out"], 3);
    assert_eq!(json["timed_out_in_connect"], 0);
    assert_eq!(json["nick_latency"]["samples"], 0);
    assert_eq!(json["connect_latency"]["samples"], 3);
    drop(listener);
}

/// A relay in front of `server` that notes the address each connection came from.
async fn recording_relay(server: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<IpAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut client, peer)) = listener.accept().await {
            seen.lock().unwrap().push(peer.ip());
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(server).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, peers)
}

fn count_by_ip(peers: &Mutex<Vec<IpAddr>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for ip in peers.lock().unwrap().drain(..) {
        *counts.entry(ip.to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_take_the_source_addresses_in_turn() {
    let server = start(unthrottled()).await;
    let (relay, peers) = recording_relay(server.addr).await;
    let expected = BTreeMap::from([("127.0.0.2".to_owned(), 3), ("127.0.0.3".to_owned(), 3)]);
    for args in [
        "idle --connections 6 --source 127.0.0.2-127.0.0.3",
        "burst --connections 6 --source 127.0.0.2,127.0.0.3",
        "churn --duration 200ms --concurrency 1 --source 127.0.0.2-127.0.0.3",
    ] {
        let json = json_of(&cli_at(relay, args)).await;
        assert_eq!(
            json["params"]["source"],
            serde_json::json!(["127.0.0.2", "127.0.0.3"])
        );
        let counts = count_by_ip(&peers);
        if args.starts_with("churn") {
            // As many cycles as it managed, alternating from the first address.
            let of = |ip: &str| counts.get(ip).copied().unwrap_or(0);
            let (two, three) = (of("127.0.0.2"), of("127.0.0.3"));
            assert!(two >= 1 && (two == three || two == three + 1), "{counts:?}");
            assert_eq!(two + three, counts.values().sum::<usize>(), "{counts:?}");
        } else {
            assert_eq!(counts, expected, "{args}: {json}");
        }
    }
}

#[test]
fn sources_outside_loopback_are_refused() {
    for bad in [
        "10.0.0.2",
        "127.0.0.2-127.0.0.1",
        "192.168.0.1,127.0.0.2",
        "::2",
    ] {
        let parsed = Cli::try_parse_from(["chat-bench", "idle", "--source", bad]);
        assert!(parsed.is_err(), "{bad}");
    }
    let err = Cli::try_parse_from(["chat-bench", "burst", "--source", "8.8.8.8"]).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_counts_refusals_at_the_limit_when_allowed() {
    let server = start(Config {
        max_connections: Some(5),
        ..unthrottled()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("chat-bench-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);

    let args = format!(
        "idle --connections 8 --connect-concurrency 8 --allow-refused --ready-file {}",
        ready.display()
    );
    let json = json_of(&cli(&server, &args)).await;
    assert_eq!(json["connections"], 5, "{json}");
    assert_eq!(json["refused"], 3);
    assert_eq!(
        json["refused_server_full"].as_u64().unwrap() + json["refused_closed"].as_u64().unwrap(),
        3
    );
    let line: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    assert_eq!(line["connections"], 5);
    assert_eq!(line["refused"], 3);
    assert!(line["connect_s"].is_number());
    std::fs::remove_dir_all(&dir).unwrap();

    // Without --allow-refused a refusal fails the run (on a fresh server, so that the
    // connections just dropped are not still counted).
    let server = start(Config {
        max_connections: Some(5),
        ..unthrottled()
    })
    .await;
    let cli = cli(&server, "idle --connections 8");
    let error = tokio::time::timeout(WAIT, chat_bench::run(&cli))
        .await
        .unwrap()
        .unwrap_err();
    assert!(format!("{error:#}").contains("SERVER_FULL"), "{error:#}");
}

/// The keys of a JSON object.
fn keys(json: &Value) -> Vec<String> {
    json.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_twice_gives_the_same_figures() {
    let server = start(unthrottled()).await;
    let one = server.addr.to_string();
    let twice = format!("{one},{one}");
    for args in [
        "throughput --members 5 --senders 2 --messages 20 --size 64",
        "rate --members 5 --senders 2 --rate 50 --duration 500ms --size 80",
    ] {
        let single = json_of(&cli(&server, args)).await;
        let double = json_of(&cli_at(&twice, args)).await;
        assert_eq!(keys(&single), keys(&double), "{args}");
        assert_eq!(keys(&single["params"]), keys(&double["params"]), "{args}");
        assert_eq!(single["params"]["addr"], one);
        assert_eq!(double["params"]["addr"], twice);
        assert_eq!(single["addrs"], serde_json::json!([one]));
        assert_eq!(double["addrs"], serde_json::json!([one, one]));
        assert_eq!(single["members_per_addr"], serde_json::json!([5]));
        assert_eq!(double["members_per_addr"], serde_json::json!([3, 2]));
        assert_eq!(double["senders_per_addr"], serde_json::json!([1, 1]));
        for json in [&single, &double] {
            assert_eq!(json["expected"], single["expected"], "{json}");
            assert_eq!(json["delivered"], json["expected"], "{json}");
            assert_eq!(json["lost"], 0, "{json}");
            assert_eq!(json["lagged"], 0, "{json}");
            assert_eq!(json["out_of_order"], 0, "{json}");
            assert_eq!(json["timed_out"], false, "{json}");
            assert!(json["p50_us"].is_number(), "{json}");
            assert_eq!(json["samples"], json["expected"], "{json}");
            assert_eq!(json["disconnected"], Value::Array(vec![]), "{json}");
        }
    }
    for args in [
        "idle --connections 6 --in-room",
        "churn --duration 200ms --concurrency 2",
        "burst --connections 6",
    ] {
        let single = json_of(&cli(&server, args)).await;
        let double = json_of(&cli(&server, &format!("{args} --addr {one}"))).await;
        assert_eq!(keys(&single), keys(&double), "{args}");
        assert_eq!(double["addrs"], serde_json::json!([one, one]), "{args}");
        assert_eq!(double["errors"], single["errors"], "{args}: {double}");
        assert_eq!(double["connections"], single["connections"], "{args}");
        assert_eq!(double["got_nick"], single["got_nick"], "{args}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_senders_are_spread_over_the_addresses() {
    // Two relays in front of one server stand for two servers sharing the room: each
    // sees the connections sent to it.
    let server = start(unthrottled()).await;
    let (first, first_peers) = recording_relay(server.addr).await;
    let (second, second_peers) = recording_relay(server.addr).await;
    let addrs = format!("{first},{second}");

    // Member i to address i mod 2: 0, 2, 4 to the first, 1, 3 to the second; each
    // address takes the source addresses in its own turn.
    let json = json_of(&cli_at(
        first,
        &format!(
            "throughput --members 5 --senders 2 --messages 20 --addr {second} --source 127.0.0.2-127.0.0.3"
        ),
    ))
    .await;
    assert_eq!(json["params"]["addr"], addrs, "{json}");
    assert_eq!(
        json["addrs"],
        serde_json::json!([first.to_string(), second.to_string()])
    );
    assert_eq!(json["members_per_addr"], serde_json::json!([3, 2]));
    assert_eq!(json["senders_per_addr"], serde_json::json!([1, 1]));
    assert_eq!(json["delivered"], 200, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    let two_and_one = BTreeMap::from([("127.0.0.2".to_owned(), 2), ("127.0.0.3".to_owned(), 1)]);
    let one_each = BTreeMap::from([("127.0.0.2".to_owned(), 1), ("127.0.0.3".to_owned(), 1)]);
    assert_eq!(count_by_ip(&first_peers), two_and_one);
    assert_eq!(count_by_ip(&second_peers), one_each);

    // The same with every member a sender, at a fixed rate.
    let json = json_of(&cli_at(
        first,
        &format!("rate --members 3 --senders 3 --rate 60 --duration 500ms --addr {second}"),
    ))
    .await;
    assert_eq!(json["members_per_addr"], serde_json::json!([2, 1]));
    assert_eq!(json["senders_per_addr"], serde_json::json!([2, 1]));
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["delivered"], json["expected"], "{json}");
    let total = |peers: &Mutex<Vec<IpAddr>>| count_by_ip(peers).values().sum::<usize>();
    assert_eq!((total(&first_peers), total(&second_peers)), (2, 1));

    // Connections of the other modes too.
    json_of(&cli_at(
        first,
        &format!("idle --connections 5 --addr {second}"),
    ))
    .await;
    assert_eq!((total(&first_peers), total(&second_peers)), (3, 2));
    json_of(&cli_at(
        first,
        &format!("burst --connections 4 --addr {second}"),
    ))
    .await;
    assert_eq!((total(&first_peers), total(&second_peers)), (2, 2));
    let json = json_of(&cli_at(
        first,
        &format!("churn --duration 200ms --concurrency 1 --addr {second}"),
    ))
    .await;
    let cycles = json["cycles"].as_u64().unwrap() as usize;
    let (a, b) = (total(&first_peers), total(&second_peers));
    // Cycles alternate from the first address (one may have failed at the deadline).
    assert!(
        cycles >= 1 && a + b >= cycles && (a == b || a == b + 1),
        "{a} {b} {json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_irc_doors_share_the_room() {
    let server = start(unthrottled()).await;
    let (first, first_peers) = recording_relay(server.irc).await;
    let (second, second_peers) = recording_relay(server.irc).await;
    let json = json_of(&cli_at(
        first,
        &format!("throughput --members 4 --senders 2 --messages 30 --protocol irc --addr {second}"),
    ))
    .await;
    // Over IRC each message reaches the 3 others, on either door.
    assert_eq!(json["expected"], 180, "{json}");
    assert_eq!(json["delivered"], 180, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    let total = |peers: &Mutex<Vec<IpAddr>>| count_by_ip(peers).values().sum::<usize>();
    assert_eq!((total(&first_peers), total(&second_peers)), (2, 2));
}

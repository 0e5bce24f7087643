//! A legacy session's SSE response streams back through the node that forwarded the request:
//! the owner runs a tool that logs while it runs (the fixture `test_tool_with_logging`), the
//! entry node relays every notification and the result. (This step of the data plane's
//! `cluster_sessions` test moved here with the fixtures; the cluster test bed is the data
//! plane's, each node here being `erlmcp-conformance`.)

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use support::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_sse_response_carries_the_owners_notifications() {
    let mut nodes = three_static("forwarding-sse");
    start_all(&mut nodes).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }
    let (a, b, c) = (nodes[0].mcp(), nodes[1].mcp(), nodes[2].mcp());
    let sid = initialize(a).await.unwrap();
    assert!(sid.starts_with("n1~"), "{sid}");

    // Session state is the owner's: setLevel through C, then a logging tool through B.
    let r = legacy_call(c, &sid, 30, "logging/setLevel", json!({"level": "debug"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // An SSE response (a tool that logs while running) streams back through B.
    let r = legacy_call(
        b,
        &sid,
        31,
        "tools/call",
        json!({"name": "test_tool_with_logging", "arguments": {}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers
    );
    let events = sse_data(&r.body);
    assert!(
        events
            .iter()
            .filter(|e| e["method"] == "notifications/message")
            .count()
            >= 3,
        "{events:?}"
    );
    assert!(
        r.json()["result"]["content"][0]["text"].is_string(),
        "{}",
        r.body
    );
    let fwd_b = nodes[1]
        .metric("erlmcp_cluster_forwarded_total")
        .await
        .unwrap();
    assert!(fwd_b >= 1.0, "{fwd_b}");
}

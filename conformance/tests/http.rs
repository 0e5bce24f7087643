//! Protocol tests over Streamable HTTP against the server with the conformance fixtures: every
//! method on the modern revision and on each session revision, list-change notifications,
//! multi-round results, SSE resumption and server-to-client requests, with responses checked
//! against the MCP JSON schemas. (Moved here from the data plane's tests when the fixtures left
//! the product; the in-process server and the helpers are the data plane's.)

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use erlmcp_dataplane::catalog::Register;
use serde_json::json;
use support::*;

const FIXTURE_YAML: &str = include_str!("../../config/conformance.yaml");
const FIXTURES: Option<Register> = Some(erlmcp_conformance::register);

#[tokio::test]
async fn modern_methods_and_results() {
    let s = start_with(FIXTURE_YAML, &[], FIXTURES).await;
    let a = s.mcp_addr;

    let d = modern(a, 1, "server/discover", json!({})).await;
    assert_eq!(d.status, 200);
    let r = d.json()["result"].clone();
    assert!(r["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "erlmcp"
    );
    schema_check(MODERN, "DiscoverResult", &r);

    let tl = modern(a, 2, "tools/list", json!({})).await.json()["result"].clone();
    schema_check(MODERN, "ListToolsResult", &tl);
    assert_eq!(tl["tools"][0]["name"], "echo");
    assert!(tl["ttlMs"].as_u64().is_some() && tl["cacheScope"] == "public");

    let call = modern(
        a,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
    .await;
    assert_eq!(call.header("content-type").unwrap(), "application/json");
    let cr = call.json()["result"].clone();
    schema_check(MODERN, "CallToolResult", &cr);
    assert_eq!(
        (cr["content"][0]["text"].clone(), cr["resultType"].clone()),
        (json!("hi"), json!("complete"))
    );

    // Invalid arguments are a tool error the model can read, not a protocol error.
    let bad = modern(
        a,
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": 5}}),
    )
    .await
    .json();
    assert_eq!(bad["result"]["isError"], true);
    let unknown = modern(a, 5, "tools/call", json!({"name": "nope"}))
        .await
        .json();
    assert_eq!(unknown["error"]["code"], -32602);

    let rl = modern(a, 6, "resources/list", json!({})).await.json()["result"].clone();
    schema_check(MODERN, "ListResourcesResult", &rl);
    let rt = modern(a, 7, "resources/templates/list", json!({}))
        .await
        .json()["result"]
        .clone();
    schema_check(MODERN, "ListResourceTemplatesResult", &rt);
    let read = modern(
        a,
        8,
        "resources/read",
        json!({"uri": "test://template/42/data"}),
    )
    .await
    .json()["result"]
        .clone();
    schema_check(MODERN, "ReadResourceResult", &read);
    assert!(read["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("\"42\""));
    let missing = modern(a, 9, "resources/read", json!({"uri": "test://missing"}))
        .await
        .json();
    assert_eq!(
        (
            missing["error"]["code"].clone(),
            missing["error"]["data"]["uri"].clone()
        ),
        (json!(-32602), json!("test://missing"))
    );

    let pl = modern(a, 10, "prompts/list", json!({})).await.json()["result"].clone();
    schema_check(MODERN, "ListPromptsResult", &pl);
    let pg = modern(
        a,
        11,
        "prompts/get",
        json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x1", "arg2": "y2"}}),
    )
    .await
    .json()["result"]
        .clone();
    schema_check(MODERN, "GetPromptResult", &pg);
    assert!(pg["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("x1"));
    let pmiss = modern(
        a,
        12,
        "prompts/get",
        json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x"}}),
    )
    .await
    .json();
    assert_eq!(pmiss["error"]["code"], -32602);

    let comp = modern(a, 13, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": "par"}})).await.json()["result"].clone();
    schema_check(MODERN, "CompleteResult", &comp);
    assert_eq!(
        comp["completion"]["values"],
        json!(["paris", "park", "party"])
    );

    // Progress streams as SSE before the result.
    let prog = modern(
        a,
        14,
        "tools/call",
        json!({"name": "test_tool_with_progress", "_meta": {}}),
    )
    .await;
    assert_eq!(
        prog.header("content-type").unwrap(),
        "application/json",
        "no progressToken, nothing streamed"
    );
    let mut p = json!({"name": "test_tool_with_progress"});
    p["_meta"] = modern_meta();
    p["_meta"]["progressToken"] = json!("tok");
    let body = json!({"jsonrpc": "2.0", "id": 15, "method": "tools/call", "params": p}).to_string();
    let sse = request(
        "POST",
        &mcp_url(&s),
        &[
            ("content-type", "application/json"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "test_tool_with_progress"),
        ],
        body,
    )
    .await;
    assert!(sse
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&sse.body);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["method"] == "notifications/progress")
            .count(),
        3
    );
    assert_eq!(events.last().unwrap()["id"], 15);
}

#[tokio::test]
async fn subscriptions_listen_acknowledges_and_filters() {
    let s = start_with("", &[], FIXTURES).await;
    let mut p = json!({"notifications": {"toolsListChanged": true}});
    p["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": 77, "method": "subscriptions/listen", "params": p})
        .to_string();
    let url = mcp_url(&s);
    let listen = tokio::spawn(async move {
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "subscriptions/listen")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let mut body = resp.into_body();
        let mut text = String::new();
        use http_body_util::BodyExt;
        while sse_data(&text).len() < 2 {
            let Some(Ok(f)) = body.frame().await else {
                break;
            };
            if let Some(d) = f.data_ref() {
                text.push_str(&String::from_utf8_lossy(d));
            }
        }
        sse_data(&text)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    modern(
        s.mcp_addr,
        1,
        "tools/call",
        json!({"name": "test_trigger_prompt_change"}),
    )
    .await;
    modern(
        s.mcp_addr,
        2,
        "tools/call",
        json!({"name": "test_trigger_tool_change"}),
    )
    .await;
    let frames = tokio::time::timeout(std::time::Duration::from_secs(5), listen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        frames[0]["method"],
        "notifications/subscriptions/acknowledged"
    );
    assert_eq!(
        frames[0]["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        frames[1]["method"], "notifications/tools/list_changed",
        "prompt change filtered out"
    );
    assert_eq!(
        frames[1]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );
}

#[tokio::test]
async fn mrtr_round_trip_and_tampering() {
    let s = start_with("", &[], FIXTURES).await;
    let a = s.mcp_addr;
    let r1 = modern(
        a,
        1,
        "tools/call",
        json!({"name": "test_input_required_result_request_state"}),
    )
    .await
    .json()["result"]
        .clone();
    schema_check(MODERN, "InputRequiredResult", &r1);
    let state = r1["requestState"].as_str().unwrap().to_string();
    let ok = modern(a, 2, "tools/call", json!({"name": "test_input_required_result_request_state", "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}, "requestState": state})).await.json();
    assert!(ok["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("state-ok"));
    let bad = modern(a, 3, "tools/call", json!({"name": "test_input_required_result_request_state", "inputResponses": {"confirm": {"action": "accept"}}, "requestState": format!("{state}x")})).await.json();
    assert_eq!(bad["error"]["code"], -32602);
    let wrong_shape = modern(a, 4, "tools/call", json!({"name": "test_input_required_result_elicitation", "inputResponses": {"user_name": 12345}})).await.json();
    assert_eq!(wrong_shape["error"]["code"], -32602);
    // A capability the client did not declare: 400 -32021 naming it.
    let mut p = json!({"name": "test_missing_capability"});
    p["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}});
    let r = request(
        "POST",
        &mcp_url(&s),
        &[
            ("content-type", "application/json"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "test_missing_capability"),
        ],
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": p}).to_string(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32021))
    );
    assert!(r.json()["error"]["data"]["requiredCapabilities"]["sampling"].is_object());
}

#[tokio::test]
async fn legacy_revisions_negotiate_and_serve() {
    let s = start_with(FIXTURE_YAML, &[], FIXTURES).await;
    let a = s.mcp_addr;
    for v in ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] {
        let (sid, init) = legacy_session(a, v).await;
        assert_eq!(init["protocolVersion"], v);
        assert!(
            sid.starts_with("test-node~"),
            "session ids name their owner: {sid}"
        );
        assert_eq!(
            legacy(a, &sid, v, 1, "ping", json!({})).await.json()["result"],
            json!({})
        );
        let tl = legacy(a, &sid, v, 2, "tools/list", json!({})).await.json();
        assert!(tl["result"]["tools"].as_array().unwrap().len() > 2);
        assert!(
            tl["result"].get("resultType").is_none() && tl["result"].get("ttlMs").is_none(),
            "no modern fields on {v}"
        );
        let echo = legacy(
            a,
            &sid,
            v,
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "m"}}),
        )
        .await
        .json();
        assert_eq!(echo["result"]["content"][0]["text"], "m");
        assert_eq!(
            echo["result"].get("structuredContent").is_some(),
            v >= "2025-06-18",
            "structured output only where the revision has it ({v})"
        );
        let nf = legacy(
            a,
            &sid,
            v,
            4,
            "resources/read",
            json!({"uri": "test://none"}),
        )
        .await;
        assert_eq!(
            (nf.status, nf.json()["error"]["code"].clone()),
            (200, json!(-32002))
        );
        assert_eq!(
            legacy(a, &sid, v, 5, "logging/setLevel", json!({"level": "loud"}))
                .await
                .json()["error"]["code"],
            -32602
        );
        assert_eq!(
            legacy(a, &sid, v, 6, "logging/setLevel", json!({"level": "debug"}))
                .await
                .json()["result"],
            json!({})
        );
        assert_eq!(
            legacy(
                a,
                &sid,
                v,
                7,
                "resources/subscribe",
                json!({"uri": "test://watched-resource"})
            )
            .await
            .json()["result"],
            json!({})
        );
        assert_eq!(
            legacy(a, &sid, v, 8, "no/such", json!({})).await.json()["error"]["code"],
            -32601
        );
        assert_eq!(
            legacy(a, &sid, v, 9, "tools/call", json!({"arguments": {}}))
                .await
                .json()["error"]["code"],
            -32602
        );
        if v == "2025-11-25" {
            schema_check(v, "ListToolsResult", &tl["result"]);
            schema_check(v, "CallToolResult", &echo["result"]);
            schema_check(v, "InitializeResult", &init);
        }
        // Version header must match the session.
        let other = if v == "2025-11-25" {
            "2025-06-18"
        } else {
            "2025-11-25"
        };
        assert_eq!(
            legacy(a, &sid, other, 10, "ping", json!({})).await.status,
            400
        );
        // DELETE ends it; afterwards the id is 404.
        let url = mcp_url(&s);
        assert_eq!(
            request("DELETE", &url, &[("mcp-session-id", &sid)], "")
                .await
                .status,
            200
        );
        assert_eq!(legacy(a, &sid, v, 11, "ping", json!({})).await.status, 404);
    }
}

#[tokio::test]
async fn legacy_sse_resumes_with_last_event_id() {
    let s = start_with("", &[], FIXTURES).await;
    let a = s.mcp_addr;
    let (sid, _) = legacy_session(a, "2025-11-25").await;
    // test_reconnection closes its stream after the priming event; the result is buffered.
    let r = legacy(
        a,
        &sid,
        "2025-11-25",
        1,
        "tools/call",
        json!({"name": "test_reconnection", "arguments": {}}),
    )
    .await;
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        r.body.contains("retry:"),
        "priming event carries a retry hint: {}",
        r.body
    );
    let last = r
        .body
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    assert!(
        sse_data(&r.body).iter().all(|e| e.get("result").is_none()),
        "result not on the closed stream"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut h = legacy_headers(&sid, "2025-11-25");
    h.push(("last-event-id", &last));
    let resumed = request("GET", &mcp_url(&s), &h, "").await;
    let events = sse_data(&resumed.body);
    assert_eq!(events.last().unwrap()["id"], 1, "{}", resumed.body);
    assert_eq!(
        events.last().unwrap()["result"]["content"][0]["text"],
        "Reconnection test completed"
    );
}

#[tokio::test]
async fn legacy_server_to_client_requests_over_sse() {
    let s = start_with("", &[], FIXTURES).await;
    let a = s.mcp_addr;
    let (sid, _) = legacy_session(a, "2025-11-25").await;
    let url = mcp_url(&s);
    let call = {
        let sid = sid.clone();
        tokio::spawn(async move {
            legacy(
                a,
                &sid,
                "2025-11-25",
                9,
                "tools/call",
                json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}),
            )
            .await
        })
    };
    // The sampling request is pending on the server; answer it as the client would.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = json!({"jsonrpc": "2.0", "id": "srv-0", "result": {"role": "assistant", "content": {"type": "text", "text": "sampled!"}, "model": "m"}}).to_string();
    assert_eq!(
        request("POST", &url, &legacy_headers(&sid, "2025-11-25"), answer)
            .await
            .status,
        202
    );
    let r = call.await.unwrap();
    let events = sse_data(&r.body);
    assert_eq!(events[0]["method"], "sampling/createMessage");
    assert_eq!(
        events.last().unwrap()["result"]["content"][0]["text"],
        "LLM response: sampled!"
    );
}

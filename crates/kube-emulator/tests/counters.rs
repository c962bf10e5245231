//! The `kube-emulator` binary run as the benchmark runs it: a CRD from a file, the base URL on
//! stdout, and request counters at `/_emulator/counters`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kube-emulator");
const CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crds/identitysettings.dev.yaml"
);

/// Kills the emulator when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--crd", CRD])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line:?}");
    (running, url)
}

async fn counters(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/_emulator/counters"))
        .send()
        .await
        .expect("counters answer")
        .json()
        .await
        .expect("counters are JSON")
}

#[tokio::test]
async fn counters_count_a_get_and_a_list_and_reset() {
    let (_emulator, url) = start();
    let http = identity_client::http_client_builder().build().unwrap();
    let get = http
        .get(format!("{url}/api/v1/namespaces/bench/secrets/missing"))
        .send()
        .await
        .expect("GET answers");
    assert_eq!(get.status(), 404);
    let list = http
        .get(format!(
            "{url}/apis/identitysettings.dev/v1alpha1/namespaces/bench/identitysettingpolicies"
        ))
        .send()
        .await
        .expect("LIST answers");
    assert_eq!(
        list.status(),
        200,
        "the CRD given on the command line is served"
    );

    let counted = counters(&http, &url).await;
    assert_eq!(counted["byVerb"]["get"], 1, "{counted}");
    assert_eq!(counted["byVerb"]["list"], 1, "{counted}");
    assert_eq!(counted["byResource"]["secrets/get"], 1, "{counted}");
    assert_eq!(
        counted["byResource"]["identitysettingpolicies/list"], 1,
        "{counted}"
    );

    let reset = http
        .delete(format!("{url}/_emulator/counters"))
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(reset.status(), 204);
    let counted = counters(&http, &url).await;
    assert_eq!(counted["byVerb"], serde_json::json!({}), "{counted}");
    assert_eq!(counted["byResource"], serde_json::json!({}), "{counted}");
}

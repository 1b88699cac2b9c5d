//! A whole SecAgg round over HTTP on loopback: start a server in this process, create a
//! federation, enroll five participants, let each contribute a weighted update through the SDK,
//! and print the new global model's first values next to the plaintext weighted mean.
//!
//! ```sh
//! cargo run -p fedagg-client --example round
//! ```

use std::time::Duration;

use fedagg_api::{FederationSpec, Mode, Role};
use fedagg_client::{Admin, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("fedagg-example-{}", std::process::id()));
    let admin_token = "example-admin-token-0123456789";
    let config = fedagg_server::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.clone(),
        admin_token: Some(admin_token.into()),
        ..Default::default()
    };
    let server = fedagg_server::Server::start(config).await?;
    let base = format!("http://{}", server.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let admin = Admin::new(&base, admin_token)?;
    let fed = admin
        .create_federation(&FederationSpec {
            name: "example".into(),
            vector_len: 4,
            mode: Mode::Secagg {
                clip: 1.0,
                levels: 1 << 16,
                max_weight: 1000,
                dropout_rate: 0.1,
                corrupt_fraction: 0.05,
                malicious_server: false,
            },
            min_clients: 5,
            max_clients: 100,
            phase_timeout_secs: 30,
            server_lr: 1.0,
            auto_rounds: false,
            roster_authority: None,
            scaffold: false,
        })
        .await?;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let code = admin.enrollment_code(fed.id, Role::Participant).await?;
        clients.push(Client::enroll(&base, &code.bundle).await?.0);
    }
    admin.open_round(fed.id).await?;

    let updates: Vec<(Vec<f32>, u64)> = (0..5)
        .map(|i| {
            let x = i as f32 / 10.0;
            (vec![x, -x, 0.5 - x, 0.25], 10 * (i + 1))
        })
        .collect();
    let mut tasks = Vec::new();
    for (c, (u, w)) in clients.into_iter().zip(updates.clone()) {
        tasks.push(tokio::spawn(async move { c.contribute(&u, w).await }));
    }
    for t in tasks {
        let outcome = t.await??;
        println!(
            "participant saw round {} end: {:?}",
            outcome.round, outcome.status
        );
    }
    let info = admin.wait_round(fed.id, 1, Duration::from_secs(60)).await?;
    println!("record: {:?}", info.record);
    let model = admin.model(fed.id, 1).await?;
    let total: u64 = updates.iter().map(|(_, w)| w).sum();
    let mean: Vec<f64> = (0..4)
        .map(|j| {
            updates
                .iter()
                .map(|(u, w)| f64::from(u[j]) * *w as f64)
                .sum::<f64>()
                / total as f64
        })
        .collect();
    println!("aggregated model: {model:?}");
    println!("plaintext mean:   {mean:?}");
    let _ = stop.send(());
    serving.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

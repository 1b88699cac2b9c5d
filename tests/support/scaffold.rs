//! SCAFFOLD through the service: each participant's control-variate delta travels with its
//! update under SecAgg, and the control variate the server keeps and publishes with each model is
//! exactly the simulation's server step on the same deltas (`fedagg_optim::scaffold_step` on
//! their sum, which `fedagg_train::server::scaffold_server_update` takes), over the whole
//! population, across a SIGKILL and restart.

use super::*;

/// Values on the quantization grid of `secagg` (clip 1, 2^16 levels), so that quantizing them
/// is exact and the server's decoded sums are the plaintext sums.
fn on_grid(n: usize, m: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (0..m)
                .map(|_| (f64::from(rng.next_u32() % 65_537) * STEP - 1.0) as f32)
                .collect()
        })
        .collect()
}

/// One round: every picked client contributes its update with its control delta; returns who
/// was picked (indices into `clients`) and their deltas.
async fn scaffold_round(
    admin: &Admin,
    fid: i64,
    clients: &[Client],
    seed: u64,
    m: usize,
) -> (Vec<usize>, Vec<Vec<f32>>) {
    let round = admin.open_round(fid).await.unwrap();
    let mut picked = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let info = c.round(round.round, None, Duration::ZERO).await.unwrap();
        if info.member.is_some() {
            picked.push(i);
        }
    }
    let deltas = contribute_with_deltas(clients, &picked, seed, m).await;
    (picked, deltas)
}

/// `picked` contribute updates and control deltas on the grid, weighted differently; returns
/// the deltas once the round completed.
async fn contribute_with_deltas(
    clients: &[Client],
    picked: &[usize],
    seed: u64,
    m: usize,
) -> Vec<Vec<f32>> {
    let updates = on_grid(picked.len(), m, seed);
    let deltas = on_grid(picked.len(), m, seed ^ 0xC0);
    let handles: Vec<_> = picked
        .iter()
        .zip(updates.iter().zip(&deltas))
        .map(|(&i, (u, d))| {
            let (c, u, d) = (clients[i].clone(), u.clone(), d.clone());
            tokio::spawn(async move {
                let opts = Contribute {
                    control_delta: Some(d),
                    timeout: Some(Duration::from_secs(60)),
                    ..Default::default()
                };
                c.contribute_with(&u, 1 + i as u64, opts).await
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status, RoundStatus::Completed);
    }
    deltas
}

/// The control variate after one round of `deltas` from zero, over `population`, as the
/// simulation sums them: in f64, then one step.
fn stepped(c: &mut [f32], deltas: &[Vec<f32>], population: usize) {
    let sum: Vec<f64> = (0..c.len())
        .map(|j| deltas.iter().map(|d| f64::from(d[j])).sum())
        .collect();
    fedagg_optim::scaffold_step(c, &sum, population);
}

/// SCAFFOLD under the lattice mode: the control deltas encrypted with the updates, the key
/// holder decrypting the pair's sum.
#[cfg(feature = "lattice")]
pub(super) async fn a_lattice_scaffold_round_moves_the_control_variate(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 100;
    let mode = Mode::Lattice {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let mut sp = spec(mode, m, 3, 60);
    sp.max_clients = 16;
    sp.scaffold = true;
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    let kh = enroll(&srv.base, &srv.admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let quant = fed.spec.quant().unwrap();
    let params = fedagg_lattice::LatticeParams::new(&quant).unwrap();
    let (sk, pk) = fedagg_lattice::keygen(params, &mut ChaCha20Rng::seed_from_u64(61));
    let kh = KeyHolder::lattice(kh, sk, pk).unverified();
    kh.publish().await.unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, 4, Role::Participant).await;
    let round = srv.admin.open_round(fed.id).await.unwrap();
    let key_holder = tokio::spawn(async move { kh.decrypt_round(round.round, WAIT).await });
    let deltas = contribute_with_deltas(&clients, &[0, 1, 2, 3], 62, m).await;
    let decrypted = key_holder.await.unwrap().unwrap();
    assert_eq!(decrypted.status, RoundStatus::Completed);
    let mut c = vec![0.0f32; m];
    stepped(&mut c, &deltas, 4);
    assert_eq!(clients[1].server_controls(1).await.unwrap(), c);
}

pub(super) async fn scaffold_server_step_over_rest_equals_the_simulations(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let mut served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let admin = Admin::new(&served.base, ADMIN).unwrap();
    let m = 24;
    // Cohorts of 4 drawn from 6: the control step divides by the population, not the cohort.
    let mut s = spec(secagg(0.1), m, 3, 30);
    s.max_clients = 4;
    s.scaffold = true;
    let fed = admin.create_federation(&s).await.unwrap();
    let population = 6;
    let clients = enroll(&served.base, &admin, fed.id, population, Role::Participant).await;
    // Before any round the published control variate is zero.
    assert_eq!(
        clients[0].server_controls(0).await.unwrap(),
        vec![0.0f32; m]
    );
    // The SDK refuses an update without its delta before sending anything.
    let e = clients[0].contribute(&[0.0; 24], 1).await.unwrap_err();
    assert!(e.to_string().contains("control-variate delta"), "{e}");

    let mut c = vec![0.0f32; m];
    for (round, seed) in [(1u64, 51u64), (2, 52)] {
        if round == 2 {
            // c is kept with the model: a killed and restarted server continues from it.
            served = kill_and_restart(&mut served, &dir, &env);
        }
        let (picked, deltas) = scaffold_round(&admin, fed.id, &clients, seed, m).await;
        assert_eq!(picked.len(), 4);
        stepped(&mut c, &deltas, population);
        for client in [&clients[picked[0]], &clients[5 - picked[0]]] {
            assert_eq!(
                client.server_controls(round).await.unwrap(),
                c,
                "round {round}"
            );
        }
    }
    assert_eq!(admin.federation(fed.id).await.unwrap().model_version, 2);

    // A federation without SCAFFOLD keeps no control variate, and takes no delta.
    let plain = admin
        .create_federation(&spec(secagg(0.1), m, 3, 30))
        .await
        .unwrap();
    let member = enroll(&served.base, &admin, plain.id, 1, Role::Participant).await;
    let e = member[0].server_controls(0).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 409, .. }), "{e}");
    let opts = Contribute {
        control_delta: Some(vec![0.0; m]),
        ..Default::default()
    };
    let e = member[0]
        .contribute_with(&[0.0; 24], 1, opts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not use SCAFFOLD"), "{e}");
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

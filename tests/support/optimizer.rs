//! Server optimizers through the service: the model each round produces is the optimizer's step
//! computed directly from the round's aggregate, its state survives a SIGKILL and restart
//! mid-federation, it cannot change while a round is open, and a new kind starts afresh.

use fedagg_api::ServerOptimizer;
use fedagg_optim::ServerState;

use super::*;

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// One SecAgg round of every client; the aggregate it released (the weighted mean).
async fn round_of(admin: &Admin, fid: i64, clients: &[Client], seed: u64, m: usize) -> Vec<f32> {
    admin.open_round(fid).await.unwrap();
    let ups = updates(clients.len(), m, seed);
    for r in contribute_all(clients, &ups, &vec![None; clients.len()]).await {
        assert_eq!(done(&r).status, RoundStatus::Completed, "{r:?}");
    }
    f32s(&weighted_mean(&ups))
}

pub(super) async fn server_optimizers_step_as_computed_directly_and_survive_a_restart(
    store: Store,
) {
    let dir = temp_dir();
    let env = store_env(&store);
    let mut served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let admin = Admin::new(&served.base, ADMIN).unwrap();
    let m = 40;
    let fed = admin
        .create_federation(&spec(secagg(0.1), m, 3, 30))
        .await
        .unwrap();
    let clients = enroll(&served.base, &admin, fed.id, 4, Role::Participant).await;
    assert_eq!(fed.server_optimizer, ServerOptimizer::Fedavg { lr: 1.0 });
    let adam = ServerOptimizer::Fedadam {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };
    let bad = ServerOptimizer::Fedadam {
        lr: 0.1,
        beta1: 1.0,
        beta2: 0.99,
        tau: 1e-3,
    };
    let e = admin.set_server_optimizer(fed.id, &bad).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 422, .. }), "{e}");
    admin.set_server_optimizer(fed.id, &adam).await.unwrap();
    assert_eq!(
        admin.federation(fed.id).await.unwrap().server_optimizer,
        adam
    );

    // The direct computation: FedAdam's steps on the rounds' aggregates, from the zero model.
    let mut direct = ServerState::new(adam.to_optim(), m);
    let mut w = vec![0.0f32; m];
    let agg1 = round_of(&admin, fed.id, &clients, 41, m).await;
    direct.apply(&mut w, &agg1);
    // The aggregate is exact to a quantization step; FedAdam's step moves by about lr a
    // coordinate, and a state lost in the restart would change round 2's by as much.
    let tol = 0.02 * 0.1;
    assert_close(&admin.model(fed.id, 1).await.unwrap(), &f64s(&w), tol);

    served = kill_and_restart(&mut served, &dir, &env);
    admin.open_round(fed.id).await.unwrap();
    let e = admin.set_server_optimizer(fed.id, &adam).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 409, .. }), "{e}");
    let ups = updates(4, m, 42);
    for r in contribute_all(&clients, &ups, &[None, None, None, None]).await {
        assert_eq!(done(&r).status, RoundStatus::Completed, "{r:?}");
    }
    direct.apply(&mut w, &f32s(&weighted_mean(&ups)));
    assert_close(&admin.model(fed.id, 2).await.unwrap(), &f64s(&w), tol);

    // Another kind between rounds: its state starts afresh (FedAvgM's first step is lr times
    // the aggregate).
    let momentum = ServerOptimizer::Fedavgm {
        lr: 0.5,
        momentum: 0.9,
    };
    admin.set_server_optimizer(fed.id, &momentum).await.unwrap();
    let agg3 = round_of(&admin, fed.id, &clients, 43, m).await;
    // From the service's own model 2, so that only round 3's aggregate is approximate.
    let model2 = admin.model(fed.id, 2).await.unwrap();
    let want: Vec<f64> = model2
        .iter()
        .zip(&agg3)
        .map(|(w, a)| f64::from(*w) + 0.5 * f64::from(*a))
        .collect();
    assert_close(&admin.model(fed.id, 3).await.unwrap(), &want, 2.0 * STEP);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| f64::from(*x)).collect()
}

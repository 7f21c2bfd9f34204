//! The batched writer: every agent report goes to one task that commits whatever has
//! accumulated in one transaction (group commit), then acknowledges results to their agents.
//! While one commit is being fsynced the next batch fills up, so throughput grows with load
//! instead of collapsing under it.

use std::collections::HashMap;
use std::time::Duration;

use ferry_proto::agent::HubMessage;
use uuid::Uuid;

use super::lock;
use crate::AppState;
use crate::store::AgentWrite;

/// A report waiting for the writer, and the result to acknowledge once it is committed.
pub(super) struct Pending {
    pub(super) write: AgentWrite,
    /// (device, operation): told `result_stored` on the device's session at that moment (the
    /// one that carried the report may have been replaced since).
    pub(super) ack: Option<(Uuid, Uuid)>,
}

/// Reports waiting for the writer before sessions have to wait (see [`Agents::record`]).
pub(super) const WRITE_QUEUE: usize = 65_536;

/// Largest number of reports committed in one transaction.
const MAX_BATCH: usize = 5000;

/// The writer task: commits reports in batches, acknowledges results, bumps versions. On
/// [`super::Agents::stop_writer`] it commits what is still queued and ends, so that a hub
/// shutting down loses no report it has taken (the agents would repeat unacknowledged results
/// anyway, but a clean stop should not need them to).
pub async fn run_writer(state: AppState) {
    let Some(mut rx) = lock(&state.agents.writes_rx).take() else {
        return;
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if batch.is_empty() {
            if stopping {
                // Everything queued is committed: done.
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    p = rx.recv() => match p {
                        Some(p) => batch.push(p),
                        None => return,
                    },
                    _ = state.agents.writer_stop.notified() => {
                        stopping = true;
                    }
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue; // woken to stop: drain what is left, or end
        }
        let writes = coalesce(&batch);
        match state.store.apply_agent_batch(&writes).await {
            Ok(effect) => {
                for p in batch.drain(..) {
                    if let Some((device, op_id)) = p.ack
                        && let Some(session) = state.agents.session(device)
                    {
                        session.push_message(&HubMessage::ResultStored { op_id });
                    }
                }
                for (device, op_id) in effect.stop {
                    if let Some(session) = state.agents.session(device) {
                        session.push_message(&HubMessage::Cancel { op_id });
                    }
                }
                if !effect.ops.is_empty() {
                    state.agents.touch_ops(effect.ops);
                }
                state.outbox.poke_for(effect.queued);
            }
            Err(e) => {
                // Keep the batch and try again: the reports are only acknowledged after a
                // commit, so nothing is lost meanwhile (agents re-send after a hub restart).
                tracing::error!(error = %e, reports = batch.len(), "could not store agent reports; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The batch's writes with each (operation, device)'s steps folded into its last one: an agent
/// that answers quickly reports `received`, `running` and `finished` within milliseconds, and
/// only the final state needs writing. (Forward-only transitions make this exact: the later
/// step's update applies from every state the earlier one would have left.)
fn coalesce(batch: &[Pending]) -> Vec<AgentWrite> {
    fn rank(w: &AgentWrite) -> Option<(Uuid, Uuid, u8)> {
        match w {
            AgentWrite::Received { op, device } => Some((*op, *device, 1)),
            AgentWrite::Running { op, device } => Some((*op, *device, 2)),
            AgentWrite::Finished { op, device, .. } => Some((*op, *device, 3)),
            _ => None,
        }
    }
    let mut strongest: HashMap<(Uuid, Uuid), (u8, usize)> = HashMap::new();
    for (i, p) in batch.iter().enumerate() {
        if let Some((op, device, r)) = rank(&p.write) {
            let e = strongest.entry((op, device)).or_insert((r, i));
            if r >= e.0 {
                *e = (r, i);
            }
        }
    }
    batch
        .iter()
        .enumerate()
        .filter(|(i, p)| match rank(&p.write) {
            Some((op, device, _)) => strongest.get(&(op, device)).is_some_and(|e| e.1 == *i),
            None => true,
        })
        .map(|(_, p)| p.write.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_writes_only_the_last_step_of_each_target() {
        let (op, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let outcome = ferry_proto::ops::OpOutcome {
            state: ferry_proto::ops::OutcomeState::Succeeded,
            exit_code: Some(0),
            output: String::new(),
            error: String::new(),
            reboot_required: false,
        };
        let p = |write| Pending { write, ack: None };
        let batch = vec![
            p(AgentWrite::Received { op, device: a }),
            p(AgentWrite::Received { op, device: b }),
            p(AgentWrite::Running { op, device: a }),
            p(AgentWrite::Finished {
                op,
                device: a,
                outcome,
            }),
            p(AgentWrite::Seen {
                device: a,
                at: 1,
                remote_addr: None,
            }),
        ];
        let kept = coalesce(&batch);
        assert_eq!(kept.len(), 3);
        assert!(matches!(kept[0], AgentWrite::Received { device, .. } if device == b));
        assert!(matches!(kept[1], AgentWrite::Finished { device, .. } if device == a));
        assert!(matches!(kept[2], AgentWrite::Seen { .. }));
    }
}

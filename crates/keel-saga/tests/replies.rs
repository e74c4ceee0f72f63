//! Steps that talk through messages: a command sent, the reply delivered by the reply
//! handler, a lost reply answered by the next attempt (the receiver re-announces, never acts
//! twice), a refusal that compensates, and replies nobody waits for. Time is paused, so the
//! patience runs out at once and exactly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_saga::{
    MemorySagaStore, Replies, Reply, Saga, SagaRunner, SagaStatus, Step, StepContext, StepError,
};

const PATIENCE: Duration = Duration::from_secs(5);

/// A receiving service: acts once per command id, answers every request with the outcome it
/// reached, and loses the replies to the first `lose` requests.
#[derive(Clone)]
struct Service {
    replies: Replies,
    outcome: Reply,
    lose: Arc<Mutex<u32>>,
    /// Request ids received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Outcomes reached, by command id (acting = adding one).
    acted: Arc<Mutex<HashMap<String, Reply>>>,
}

impl Service {
    fn new(replies: &Replies, outcome: Reply, lose: u32) -> Service {
        Service {
            replies: replies.clone(),
            outcome,
            lose: Arc::new(Mutex::new(lose)),
            requests: Arc::default(),
            acted: Arc::default(),
        }
    }

    /// The command "arrives": the service answers on another task, as a consumer would.
    fn send(&self, request_id: String, command_id: String) {
        let service = self.clone();
        self.requests.lock().unwrap().push(request_id.clone());
        tokio::spawn(async move {
            let reply = service
                .acted
                .lock()
                .unwrap()
                .entry(command_id)
                .or_insert_with(|| service.outcome.clone())
                .clone();
            let mut lose = service.lose.lock().unwrap();
            if *lose > 0 {
                *lose -= 1;
            } else {
                service.replies.deliver(&request_id, reply);
            }
        });
    }

    fn step(&self, name: &'static str) -> Step<u32> {
        let (act, undo) = (self.clone(), self.clone());
        Step::new(name, move |ctx: StepContext<u32>| request(act.clone(), ctx))
            .compensate_with(move |ctx: StepContext<u32>| request(undo.clone(), ctx))
            .with_retries(3, Duration::from_millis(10))
    }
}

async fn request(service: Service, ctx: StepContext<u32>) -> Result<u32, StepError> {
    let request_id = ctx.request_id();
    let command_id = ctx.command_id.clone();
    let send = async {
        service.send(request_id.clone(), command_id);
        Ok(())
    };
    service
        .replies
        .clone()
        .request(&request_id, PATIENCE, send)
        .await
        .map(|()| ctx.data + 1)
}

async fn run(saga: Saga<u32>) -> (SagaStatus, Option<String>) {
    let outcome = SagaRunner::new(saga, Arc::new(MemorySagaStore::default()))
        .start("o1", 0)
        .await
        .unwrap();
    (outcome.status, outcome.error)
}

#[tokio::test(start_paused = true)]
async fn a_reply_completes_the_step() {
    let replies = Replies::new();
    let service = Service::new(&replies, Ok(()), 0);
    let status = run(Saga::new("order").step(service.step("reserve"))).await;
    assert_eq!(status, (SagaStatus::Completed, None));
    assert_eq!(*service.requests.lock().unwrap(), ["o1/reserve/do#1"]);
    assert_eq!(replies.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_is_answered_again_without_acting_twice() {
    let replies = Replies::new();
    let service = Service::new(&replies, Ok(()), 1);
    let status = run(Saga::new("order").step(service.step("reserve"))).await;
    assert_eq!(status, (SagaStatus::Completed, None));
    assert_eq!(
        *service.requests.lock().unwrap(),
        ["o1/reserve/do#1", "o1/reserve/do#2"]
    );
    assert_eq!(service.acted.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_compensates_through_messages_too() {
    let replies = Replies::new();
    let stock = Service::new(&replies, Ok(()), 0);
    let card = Service::new(&replies, Err(StepError::Permanent("declined".into())), 0);
    let saga = Saga::new("order")
        .step(stock.step("reserve"))
        .step(card.step("charge"));
    let (status, error) = run(saga).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(error.unwrap().contains("declined"));
    assert_eq!(
        *stock.requests.lock().unwrap(),
        ["o1/reserve/do#1", "o1/reserve/undo#1"]
    );
}

#[tokio::test(start_paused = true)]
async fn no_reply_at_all_fails_the_step_after_its_attempts() {
    let replies = Replies::new();
    let service = Service::new(&replies, Ok(()), u32::MAX);
    let (status, error) = run(Saga::new("order").step(service.step("reserve"))).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(error.unwrap().contains("no reply to o1/reserve/do#3"));
    assert_eq!(replies.waiting(), 0);
}

#[tokio::test]
async fn a_reply_nobody_waits_for_is_dropped() {
    let replies = Replies::new();
    assert!(!replies.deliver("o1/reserve/do#1", Ok(())));
    assert_eq!(replies.waiting(), 0);
}

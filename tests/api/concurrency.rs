//! Concurrency through the gateway on a real Redis: what the previous Node.js service got
//! wrong (200 concurrent creates acknowledged, 90 stored) cannot happen here, and the email
//! uniqueness index stays consistent under racing creates, updates and deletes.
//!
//! Every test releases its requests together (a barrier), then checks both the API's answers
//! and the keys in Redis directly (`index_problems`).

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{sync::Barrier, task::JoinSet};

use crate::helpers::{Stack, client, get_json, get_text, index_problems, post, post_json, redis_stack};

/// `count` distinct letter-case spellings of `email` (it needs enough letters).
fn case_variants(email: &str, count: usize) -> Vec<String> {
    let letters: Vec<usize> = email
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    assert!(1usize << letters.len().min(20) >= count, "{email} has too few letters");
    (0..count)
        .map(|mask| {
            let mut bytes = email.as_bytes().to_vec();
            for (bit, &at) in letters.iter().enumerate().take(20) {
                if mask & (1 << bit) != 0 {
                    bytes[at] = bytes[at].to_ascii_uppercase();
                }
            }
            String::from_utf8(bytes).expect("ascii")
        })
        .collect()
}

/// A status histogram for assertion messages.
fn histogram(statuses: impl IntoIterator<Item = u16>) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_default() += 1;
    }
    counts
}

/// Sends all `requests` at once (after a barrier) and returns (index, status, JSON body).
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<(usize, u16, Value)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut tasks = JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let response = request.send().await.expect("request answered");
            let status = response.status().as_u16();
            let body = if status == 204 {
                Value::Null
            } else {
                response.json::<Value>().await.expect("JSON body")
            };
            (index, status, body)
        });
    }
    let mut results = tasks.join_all().await;
    results.sort_by_key(|(index, _, _)| *index);
    results
}

/// The value of `http_requests_total{method,route,status}` in a Prometheus text page.
fn counted(page: &str, method: &str, route: &str, status: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .filter(|line| {
            [("method", method), ("route", route), ("status", status)]
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn redis_of(stack: &Stack) -> redis::Connection {
    stack
        .user_service
        .redis
        .as_ref()
        .expect("the Redis backend")
        .connection()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_creates_are_all_stored_and_counted() {
    let stack = redis_stack(Duration::from_secs(5)).await;
    let http = client();
    let requests = (0..200)
        .map(|i| {
            http.post(stack.api("/users"))
                .json(&json!({"name": format!("Concurrent {i}"), "email": format!("concurrent-{i}@example.com")}))
        })
        .collect();
    let results = all_at_once(requests).await;
    let statuses = histogram(results.iter().map(|(_, s, _)| *s));
    let created: Vec<&Value> = results
        .iter()
        .filter(|(_, s, _)| *s == 201)
        .map(|(_, _, b)| b)
        .collect();
    // On a healthy Redis nothing has a reason to fail.
    assert_eq!(created.len(), 200, "statuses: {statuses:?}");

    // Every acknowledged user can be read back, exactly as acknowledged.
    let reads = all_at_once(
        created
            .iter()
            .map(|user| http.get(stack.api(&format!("/users/{}", user["id"].as_str().expect("id")))))
            .collect(),
    )
    .await;
    for ((_, status, body), user) in reads.iter().zip(&created) {
        assert_eq!(*status, 200, "{user}");
        assert_eq!(body, *user);
    }
    let list: Value = get_json(&http, stack.api("/users?limit=1000")).await;
    assert_eq!(list["total"], created.len(), "total == number of 201s");
    let listed: HashSet<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    let acknowledged: HashSet<&str> = created.iter().map(|u| u["id"].as_str().expect("id")).collect();
    assert_eq!(listed, acknowledged);

    // Both services counted exactly what the clients saw.
    let gateway_metrics = users_platform::telemetry::metrics::encode(&stack.gateway_registry);
    let users_metrics = get_text(&http, stack.users.url("/metrics")).await;
    assert_eq!(counted(&gateway_metrics, "POST", "/api/users", "201"), 200.0);
    assert_eq!(counted(&users_metrics, "POST", "/users", "201"), 200.0);

    let mut redis = redis_of(&stack);
    let users: Vec<String> = redis::cmd("KEYS").arg("users:user:*").query(&mut redis).expect("keys");
    let emails: Vec<String> = redis::cmd("KEYS").arg("users:email:*").query(&mut redis).expect("keys");
    assert_eq!((users.len(), emails.len()), (200, 200));
    assert_eq!(index_problems(&mut redis, false), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_creates_of_one_email_in_any_case_admit_exactly_one() {
    let stack = redis_stack(Duration::from_secs(5)).await;
    let http = client();
    for (round, email) in [
        "race.condition@example.com",
        "Second.Round@Example.Org",
        "third@example.net",
    ]
    .into_iter()
    .enumerate()
    {
        let variants = case_variants(email, 40);
        let requests = variants
            .iter()
            .enumerate()
            .map(|(i, variant)| {
                http.post(stack.api("/users"))
                    .json(&json!({"name": format!("Racer {i}"), "email": variant}))
            })
            .collect();
        let results = all_at_once(requests).await;
        let statuses = histogram(results.iter().map(|(_, s, _)| *s));
        assert_eq!(statuses, BTreeMap::from([(201, 1), (409, 39)]), "round {round}");
        for (_, status, body) in &results {
            if *status == 409 {
                assert!(body["error"].is_string(), "{body}");
            }
        }
        let winner = &results.iter().find(|(_, s, _)| *s == 201).expect("one winner").2;
        let mut redis = redis_of(&stack);
        let owner: String = redis::cmd("GET")
            .arg(format!("users:email:{}", email.to_lowercase()))
            .query(&mut redis)
            .expect("index entry");
        assert_eq!(owner, winner["id"].as_str().expect("id"));
    }
    let list: Value = get_json(&http, stack.api("/users")).await;
    assert_eq!(list["total"], 3);
    assert_eq!(index_problems(&mut redis_of(&stack), false), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_to_one_email_let_at_most_one_win() {
    let stack = redis_stack(Duration::from_secs(5)).await;
    let http = client();
    let mut users = Vec::new();
    for i in 0..10 {
        let user: Value = post_json(
            &http,
            stack.api("/users"),
            &json!({"name": format!("Patcher {i}"), "email": format!("patcher-{i}@example.com")}),
        )
        .await;
        users.push(user);
    }
    let mut given_up = Vec::new();
    for round in 0..15 {
        // Two users in the early rounds (the case), all ten later.
        let racers: Vec<Value> = if round < 10 {
            vec![users[round % 10].clone(), users[(round + 3) % 10].clone()]
        } else {
            users.clone()
        };
        let target = format!("shared-{round}@example.com");
        let variants = case_variants(&target, racers.len());
        let requests = racers
            .iter()
            .zip(&variants)
            .map(|(user, email)| {
                http.patch(stack.api(&format!("/users/{}", user["id"].as_str().expect("id"))))
                    .json(&json!({"email": email}))
            })
            .collect();
        let results = all_at_once(requests).await;
        let statuses = histogram(results.iter().map(|(_, s, _)| *s));
        // Nobody owned the address before the round, so exactly one wins.
        assert_eq!(
            statuses,
            BTreeMap::from([(200, 1), (409, racers.len() - 1)]),
            "round {round}"
        );
        let winner = &results.iter().find(|(_, s, _)| *s == 200).expect("winner").2;
        let before = users
            .iter()
            .find(|u| u["id"] == winner["id"])
            .expect("winner is one of ours");
        given_up.push(before["email"].as_str().expect("email").to_owned());
        let mut redis = redis_of(&stack);
        let owner: String = redis::cmd("GET")
            .arg(format!("users:email:{target}"))
            .query(&mut redis)
            .expect("index entry");
        assert_eq!(owner, winner["id"].as_str().expect("id"), "round {round}");
        // Losers are unchanged; the winner's new email is what the API shows.
        for user in &mut users {
            let fetched: Value = get_json(
                &http,
                stack.api(&format!("/users/{}", user["id"].as_str().expect("id"))),
            )
            .await;
            if fetched["id"] == winner["id"] {
                assert_eq!(fetched["email"].as_str().map(str::to_lowercase), Some(target.clone()));
            } else {
                assert_eq!(fetched["email"], user["email"], "a losing PATCH changed nothing");
            }
            *user = fetched;
        }
        assert_eq!(index_problems(&mut redis, false), Vec::<String>::new(), "round {round}");
    }
    // Every address a winner gave up is free again.
    for email in &given_up {
        let freed = post(&http, stack.api("/users"), &json!({"name": "Reuse", "email": email})).await;
        assert_eq!(freed.status(), 201, "{email} was given up and is free");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_delete_create_and_patch_of_one_email_never_leave_a_dangling_index_entry() {
    const EMAIL: &str = "contested@example.com";
    const ROUNDS: usize = 40;
    let stack = redis_stack(Duration::from_secs(5)).await;
    let http = client();
    let create = |name: &str, email: &str| {
        http.post(stack.api("/users"))
            .json(&json!({"name": name, "email": email}))
    };
    let variants = case_variants(EMAIL, 4);
    let first_owner = post_json(&http, stack.api("/users"), &json!({"name": "Owner", "email": EMAIL})).await;
    let mut owner: Option<String> = Some(first_owner["id"].as_str().expect("id").to_owned());
    let mut bystander: Option<String> = None;
    let mut outcomes = BTreeMap::<String, usize>::new();
    for round in 0..ROUNDS {
        let bystander_id = match &bystander {
            Some(id) => id.clone(),
            None => {
                let user = post_json(
                    &http,
                    stack.api("/users"),
                    &json!({"name": "Bystander", "email": format!("bystander-{round}@example.com")}),
                )
                .await;
                let id = user["id"].as_str().expect("id").to_owned();
                bystander = Some(id.clone());
                id
            }
        };
        // delete(owner) | create(E) | create(E') | patch(bystander -> E'')
        let mut requests = Vec::new();
        if let Some(id) = &owner {
            requests.push(http.delete(stack.api(&format!("/users/{id}"))));
        }
        let first_contender = requests.len();
        requests.push(create("Contender A", &variants[1]));
        requests.push(create("Contender B", &variants[2]));
        requests.push(
            http.patch(stack.api(&format!("/users/{bystander_id}")))
                .json(&json!({"email": variants[3]})),
        );
        let results = all_at_once(requests).await;
        if owner.is_some() {
            assert_eq!(results[0].1, 204, "round {round}: the owner is deleted");
        }
        let winners: Vec<&(usize, u16, Value)> = results[first_contender..]
            .iter()
            .filter(|(_, status, _)| *status == 200 || *status == 201)
            .collect();
        for (_, status, body) in &results[first_contender..] {
            assert!(
                matches!(status, 200 | 201 | 409),
                "round {round}: unexpected {status} {body}"
            );
        }
        assert!(
            winners.len() <= 1,
            "round {round}: two owners of one email: {winners:?}"
        );
        let new_owner = winners
            .first()
            .map(|(_, _, body)| body["id"].as_str().expect("id").to_owned());
        *outcomes
            .entry(match winners.first() {
                None => "nobody".to_owned(),
                Some((_, 200, _)) => "patch".to_owned(),
                Some(_) => "create".to_owned(),
            })
            .or_default() += 1;
        if new_owner.as_deref() == Some(bystander_id.as_str()) {
            bystander = None; // it owns the address now and is deleted next round
        }

        let mut redis = redis_of(&stack);
        assert_eq!(index_problems(&mut redis, false), Vec::<String>::new(), "round {round}");
        let indexed: Option<String> = redis::cmd("GET")
            .arg(format!("users:email:{EMAIL}"))
            .query(&mut redis)
            .expect("GET");
        assert_eq!(indexed, new_owner, "round {round}: the index names the API's winner");
        owner = new_owner;
    }
    crate::helpers::figure("delete_create_patch_race_outcomes", format!("{outcomes:?}"));
}

//! The store contract, checked directly against both implementations: what the memory store
//! promises, Redis must keep too (and the other way round).

use std::sync::Arc;

use time::{Duration as TimeDuration, OffsetDateTime};
use users_platform::users::{
    model::{Email, NewUser, Role, User, UserId, UserName, UserPatch},
    store::{Cursor, PageRequest, StoreError, UserStore},
};

use crate::helpers::{Backend, user_service};

fn new_user(name: &str, email: &str, at: OffsetDateTime) -> User {
    User::create(
        NewUser {
            name: UserName::parse(name).expect("name"),
            email: Email::parse(email).expect("email"),
            role: Role::User,
        },
        at,
    )
}

on_both_stores!(
    cursor_survives_deletion_of_its_user,
    users_created_in_the_same_millisecond_page_without_gaps,
    concurrent_creates_with_one_email_admit_exactly_one,
    concurrent_email_changes_to_one_address_admit_at_most_one,
    update_and_delete_of_missing_users_are_not_found,
);

async fn store(backend: Backend) -> (Arc<dyn UserStore>, crate::helpers::UserServiceUnderTest) {
    let svc = user_service(backend).await;
    (svc.app.store(), svc)
}

async fn cursor_survives_deletion_of_its_user(backend: Backend) {
    let (store, _svc) = store(backend).await;
    let t0 = OffsetDateTime::now_utc();
    let users: Vec<User> = (0..5)
        .map(|i| {
            new_user(
                &format!("u{i}"),
                &format!("u{i}@example.com"),
                t0 + TimeDuration::milliseconds(i),
            )
        })
        .collect();
    for user in &users {
        store.create(user).await.expect("create");
    }
    let first = store.list(&PageRequest { limit: 2, after: None }).await.expect("list");
    let cursor = first.next.expect("more pages");
    assert_eq!(cursor, Cursor::after(&users[1]));
    store.delete(&users[1].id).await.expect("delete the cursor's user");
    let second = store
        .list(&PageRequest {
            limit: 2,
            after: Some(cursor),
        })
        .await
        .expect("list");
    let ids: Vec<_> = second.users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, vec![users[2].id.clone(), users[3].id.clone()]);
    assert_eq!(second.total, 4);
}

async fn users_created_in_the_same_millisecond_page_without_gaps(backend: Backend) {
    let (store, _svc) = store(backend).await;
    let at = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..9 {
        let user = new_user("same", &format!("same{i}@example.com"), at);
        store.create(&user).await.expect("create");
        ids.push(user.id);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&PageRequest {
                limit: 2,
                after: after.clone(),
            })
            .await
            .expect("list");
        seen.extend(page.users.iter().map(|u| u.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "ties are broken by id, bytewise, with nothing skipped or repeated"
    );
}

async fn concurrent_creates_with_one_email_admit_exactly_one(backend: Backend) {
    let (store, _svc) = store(backend).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@Example.com"
            };
            tokio::spawn(async move { store.create(&new_user("racer", email, OffsetDateTime::now_utc())).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => created += 1,
            Err(StoreError::EmailTaken) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.count().await.expect("count"), 1);
}

async fn concurrent_email_changes_to_one_address_admit_at_most_one(backend: Backend) {
    let (store, _svc) = store(backend).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let user = new_user("u", &format!("u{i}@example.com"), OffsetDateTime::now_utc());
        store.create(&user).await.expect("create");
        ids.push(user.id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move {
                let patch = UserPatch {
                    email: Some(Email::parse("target@example.com").expect("email")),
                    ..UserPatch::default()
                };
                store.update(&id, &patch, OffsetDateTime::now_utc()).await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task").is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let page = store
        .list(&PageRequest {
            limit: 100,
            after: None,
        })
        .await
        .expect("list");
    let holders = page
        .users
        .iter()
        .filter(|u| u.email.key() == "target@example.com")
        .count();
    assert_eq!(holders, 1);
    // Every user that lost kept its old address, still indexed: re-creating it conflicts.
    for user in page.users.iter().filter(|u| u.email.key() != "target@example.com") {
        let clash = new_user("clash", user.email.as_str(), OffsetDateTime::now_utc());
        assert!(matches!(store.create(&clash).await, Err(StoreError::EmailTaken)));
    }
}

async fn update_and_delete_of_missing_users_are_not_found(backend: Backend) {
    let (store, _svc) = store(backend).await;
    let missing = UserId::parse("missing").expect("id");
    let patch = UserPatch {
        name: Some(UserName::parse("x").expect("name")),
        ..UserPatch::default()
    };
    assert!(matches!(
        store.update(&missing, &patch, OffsetDateTime::now_utc()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.delete(&missing).await, Err(StoreError::NotFound)));
    assert!(store.get(&missing).await.expect("get").is_none());
}

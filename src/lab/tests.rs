use super::*;

#[tokio::test]
async fn a_pages_faults_fall_back_to_everyones_field_by_field() {
    let lab = Lab::new(true);
    let everyone = Faults {
        delay_ms: Some(100),
        ..Faults::default()
    };
    lab.set(None, Transport::Sse, everyone).unwrap();
    let mine = Faults {
        idle_cut_s: Some(5.0),
        ..Faults::default()
    };
    lab.set(Some("page-aaaaaaaaaaaaaaaa"), Transport::Sse, mine)
        .unwrap();
    let session = lab
        .session(Some("page-aaaaaaaaaaaaaaaa"), Transport::Sse, "lobby")
        .unwrap();
    assert_eq!(session.faults().delay_ms, Some(100));
    assert_eq!(session.faults().idle_cut_s, Some(5.0));
    // Another page meets only everyone's.
    let other = lab
        .session(Some("page-bbbbbbbbbbbbbbbb"), Transport::Sse, "lobby")
        .unwrap();
    assert_eq!(other.faults().idle_cut_s, None);
}

#[tokio::test]
async fn clearing_every_transport_forgets_the_page() {
    let lab = Lab::new(true);
    let page = Some("page-aaaaaaaaaaaaaaaa");
    let blocked = Faults {
        blocked: true,
        ..Faults::default()
    };
    lab.set(page, Transport::Websocket, blocked).unwrap();
    assert!(lab.session(page, Transport::Websocket, "lobby").is_none());
    lab.set(page, Transport::Websocket, Faults::default())
        .unwrap();
    assert!(lock(&lab.faults).pages.is_empty());
}

#[tokio::test]
async fn pacing_adds_the_delay_to_the_time_at_the_capped_rate() {
    let lab = Lab::new(true);
    let slow = Faults {
        delay_ms: Some(200),
        bytes_per_s: Some(1000),
        ..Faults::default()
    };
    lab.set(None, Transport::LongPoll, slow).unwrap();
    let session = lab.session(None, Transport::LongPoll, "lobby").unwrap();
    assert_eq!(session.pace(500), Duration::from_millis(700));
}

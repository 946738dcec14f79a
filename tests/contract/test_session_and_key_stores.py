"""SessionStore and KeyStore contracts."""

from __future__ import annotations

import time

from mmrag.core.models import SESSION_QUESTION_CHARS, ApiKey, SessionMessage


def msg(role: str, text: str, **kw) -> SessionMessage:
    return SessionMessage(message_id=f"msg_{text}", role=role, content=text, **kw)


def test_sessions_append_in_order_and_are_tenant_scoped(session_store):
    assert session_store.get_session("t1", "s1") is None
    s = session_store.append_messages("t1", "s1", [msg("user", "q1", images=[{"image_id": "i1", "blob_key": "k"}]),
                                                   msg("assistant", "a1", sources=[{"source_id": "c1"}])])
    assert [m.content for m in s.messages] == ["q1", "a1"]
    s = session_store.append_messages("t1", "s1", [msg("user", "q2"), msg("assistant", "a2")])
    assert [m.content for m in s.messages] == ["q1", "a1", "q2", "a2"] and s.updated_at >= s.created_at
    assert s.messages[0].images == [{"image_id": "i1", "blob_key": "k"}]
    assert s.messages[1].sources == [{"source_id": "c1"}]
    assert session_store.get_session("t2", "s1") is None
    session_store.append_messages("t2", "s1", [msg("user", "other tenant")])
    assert len(session_store.get_session("t1", "s1").messages) == 4


def test_session_delete(session_store):
    session_store.append_messages("t1", "s2", [msg("user", "q"), msg("assistant", "a")])
    assert session_store.delete_session("t2", "s2") is None
    assert session_store.delete_session("t1", "s2") == 2
    assert session_store.get_session("t1", "s2") is None
    assert session_store.delete_session("t1", "s2") is None


def test_sessions_list_per_tenant_most_recent_first_and_paged(session_store):
    assert session_store.list_sessions("t1") == (0, [])
    long_question = "why " * 100
    for sid, question in (("s-a", "first question of a"), ("s-b", long_question), ("s-c", "c asks")):
        session_store.append_messages("t1", sid, [msg("user", question), msg("assistant", f"answer {sid}")])
        time.sleep(0.002)  # distinct updated_at, whatever the store's clock resolution
    session_store.append_messages("t2", "s-x", [msg("user", "other tenant")])
    time.sleep(0.002)
    session_store.append_messages("t1", "s-a", [msg("user", "second question of a"), msg("assistant", "again")])

    total, page = session_store.list_sessions("t1", page=1, page_size=2)
    assert total == 3 and [s.session_id for s in page] == ["s-a", "s-c"]
    a = page[0]
    assert a.message_count == 4 and a.first_question == "first question of a"
    assert a.updated_at > a.created_at and a.updated_at > page[1].updated_at
    total, rest = session_store.list_sessions("t1", page=2, page_size=2)
    assert total == 3 and [s.session_id for s in rest] == ["s-b"]
    assert rest[0].first_question == long_question[:SESSION_QUESTION_CHARS] and rest[0].message_count == 2
    assert session_store.list_sessions("t1", page=3, page_size=2) == (3, [])
    assert [s.session_id for s in session_store.list_sessions("t2")[1]] == ["s-x"]
    assert session_store.delete_session("t1", "s-c") == 2
    assert [s.session_id for s in session_store.list_sessions("t1")[1]] == ["s-a", "s-b"]


def test_keys_by_hash_list_and_revoke(key_store):
    key_store.add_key(ApiKey(key_id="key_1", tenant="acme", key_hash="h1", label="ci"))
    key_store.add_key(ApiKey(key_id="key_2", tenant="other", key_hash="h2"))
    assert key_store.find_by_hash("h1").tenant == "acme" and key_store.find_by_hash("nope") is None
    assert [k.key_id for k in key_store.list_keys("acme")] == ["key_1"]
    assert {k.key_id for k in key_store.list_keys()} == {"key_1", "key_2"}
    assert key_store.revoke("key_1") and key_store.find_by_hash("h1").revoked
    assert not key_store.revoke("key_404")

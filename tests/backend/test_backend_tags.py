"""Tags on images: the rules, tags given at upload, POST /images/{imageId}/tags, and tags in
every image the API returns."""

from __future__ import annotations

from typing import Any

import pytest

from imgup.backend import handlers, rules
from tests.backend.backend_support import (
    PNG,
    answer_json,
    api_event,
    call_complete,
    call_get,
    call_list,
    key_of,
    start_upload,
    upload_ready,
)


def call_tags(stack, image_id: str, body: Any) -> dict[str, Any]:
    event = api_event("POST", "/images/{imageId}/tags", path_params={"imageId": image_id}, body=body)
    return handlers.images(event, None, stack.env)


# --- the rules ---------------------------------------------------------------------------


def test_tag_keys_are_lower_cased_and_values_kept_as_given() -> None:
    assert rules.validate_tags({"Camera": "X100V", "trip.2026": "Ísland"}) == {
        "camera": "X100V",
        "trip.2026": "Ísland",
    }
    assert rules.parse_tag("Place=Reykjavík=north") == ("place", "Reykjavík=north")
    assert rules.parse_tag("favourite=") == ("favourite", "")
    assert rules.parse_tag("camera", value_needed=False) == ("camera", None)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"": "x"}, "Invalid tag key ''"),
        ({"-x": "x"}, "starting with a letter or a digit"),
        ({"a b": "x"}, "Invalid tag key 'a b'"),
        ({"ключ": "x"}, "Invalid tag key"),
        ({"k" * 65: "x"}, "1 to 64 letters"),
        ({"k": "v" * 129}, "at most 128 characters"),
        ({"k": "a\nb"}, "must not contain control characters"),
        ({"k": "a\u202eb"}, "must not contain control characters"),
        ({"k": " padded"}, "must not start or end with a blank"),
        ({"k": 3}, "must be a string"),
        ({"K": "1", "k": "2"}, "given twice"),
        ({f"k{n}": "v" for n in range(11)}, "at most 10 tags, not 11"),
        (["k=v"], "must be a JSON object"),
    ],
)
def test_bad_tags_are_refused_with_what_is_wrong(tags: Any, message: str) -> None:
    with pytest.raises(rules.ValidationError) as refused:
        rules.validate_tags(tags)
    assert message in refused.value.message
    assert refused.value.status == 400


def test_a_change_that_would_pass_ten_tags_is_refused_and_a_key_cannot_be_set_and_removed() -> None:
    change = rules.validate_tag_change({"set": {"k10": "v"}, "remove": ["K0"]})
    full = {f"k{n}": "v" for n in range(10)}
    assert change.apply(full) == {**{f"k{n}": "v" for n in range(1, 10)}, "k10": "v"}
    with pytest.raises(rules.ValidationError, match="at most 10 tags; this change would give it 11"):
        rules.validate_tag_change({"set": {"k10": "v"}}).apply(full)
    with pytest.raises(rules.ValidationError, match="cannot be both set and removed"):
        rules.validate_tag_change({"set": {"a": "1"}, "remove": ["A"]})
    with pytest.raises(rules.ValidationError, match="Give the tags to set"):
        rules.validate_tag_change({})


# --- the API -----------------------------------------------------------------------------


def test_tags_given_at_upload_are_kept_through_completion_and_listed(stack) -> None:
    started = start_upload(stack, PNG, name="t.png", tags={"Trip": "Iceland", "camera": "x100"})
    stack.put(key_of(stack, started["imageId"]), PNG)
    completed = answer_json(call_complete(stack, started["imageId"]))

    assert completed["tags"] == {"trip": "Iceland", "camera": "x100"}
    listed = answer_json(call_list(stack))["images"]
    assert listed[0]["tags"] == {"trip": "Iceland", "camera": "x100"}
    assert answer_json(call_get(stack, started["imageId"]))["tags"] == {"trip": "Iceland", "camera": "x100"}


def test_an_upload_with_bad_tags_is_refused_before_anything_is_recorded(stack) -> None:
    answer = handlers.upload(
        api_event(
            "POST",
            "/upload",
            body={"fileName": "a.png", "fileType": "image/png", "fileSize": len(PNG), "tags": {"a b": "c"}},
        ),
        None,
        stack.env,
    )
    assert answer["statusCode"] == 400
    assert answer_json(answer)["field"] == "tags"
    assert stack.dynamodb.scan(TableName="imgup-test-images")["Count"] == 0


def test_an_image_without_tags_has_an_empty_tags_object(stack) -> None:
    image_id = upload_ready(stack, PNG)
    assert answer_json(call_get(stack, image_id))["tags"] == {}


def test_tags_are_set_changed_and_removed_and_the_answer_is_the_image(stack) -> None:
    image_id = upload_ready(stack, PNG)

    first = call_tags(stack, image_id, {"set": {"Trip": "Iceland", "camera": "x100"}})
    assert first["statusCode"] == 200
    assert answer_json(first)["tags"] == {"trip": "Iceland", "camera": "x100"}
    assert answer_json(first)["imageId"] == image_id
    second = answer_json(call_tags(stack, image_id, {"set": {"trip": "Norway"}, "remove": ["camera"]}))
    assert second["tags"] == {"trip": "Norway"}
    last = answer_json(call_tags(stack, image_id, {"remove": ["trip", "never-set"]}))
    assert last["tags"] == {}

    assert answer_json(call_get(stack, image_id))["tags"] == {}
    assert "tags" not in stack.record(image_id)
    assert stack.record(image_id)["tagsVersion"] == {"N": "3"}


def test_tagging_an_unknown_or_unfinished_image_is_404(stack) -> None:
    started = start_upload(stack, PNG)
    unknown = "00000000-0000-4000-8000-000000000000"
    for image_id in (unknown, started["imageId"]):
        answer = call_tags(stack, image_id, {"set": {"a": "b"}})
        assert answer["statusCode"] == 404
        assert answer_json(answer)["error"] == "Image not found"


@pytest.mark.parametrize(
    "body",
    [
        None,
        "not json",
        [],
        {"set": {"k": "v" * 200}},
        {"remove": "k"},
        {"set": {f"k{n}": "v" for n in range(11)}},
    ],
)
def test_a_bad_tag_change_is_a_400_and_changes_nothing(stack, body: Any) -> None:
    image_id = upload_ready(stack, PNG)
    call_tags(stack, image_id, {"set": {"keep": "me"}})
    event = api_event(
        "POST",
        "/images/{imageId}/tags",
        path_params={"imageId": image_id},
        body=None if isinstance(body, str) else body,
        raw_body=body if isinstance(body, str) else None,
    )
    answer = handlers.images(event, None, stack.env)
    assert answer["statusCode"] == 400
    assert answer_json(call_get(stack, image_id))["tags"] == {"keep": "me"}


def test_a_change_made_meanwhile_is_not_lost(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two changes that read the same tags: the second write's condition fails, and it is
    made again on the tags as the first left them."""
    image_id = upload_ready(stack, PNG)
    store_cls = handlers.ImageStore
    real = store_cls.replace_tags
    interleaved: list[bool] = []

    def replace_after_another_change(self, record, tags):
        if not interleaved:
            interleaved.append(True)
            assert call_tags(stack, image_id, {"set": {"first": "1"}})["statusCode"] == 200
        return real(self, record, tags)

    monkeypatch.setattr(store_cls, "replace_tags", replace_after_another_change)
    answer = answer_json(call_tags(stack, image_id, {"set": {"second": "2"}}))
    assert answer["tags"] == {"first": "1", "second": "2"}


def test_the_listing_filters_by_tag_on_the_server_all_given_tags_must_hold(stack) -> None:
    iceland = upload_ready(stack, PNG, name="i.png")
    both = upload_ready(stack, PNG, name="b.png")
    bare = upload_ready(stack, PNG, name="n.png")
    call_tags(stack, iceland, {"set": {"trip": "Iceland"}})
    call_tags(stack, both, {"set": {"trip": "Iceland", "camera": "x100"}})

    def listed(*tags: str) -> tuple[list[str], dict]:
        query = {"tag": tags[-1]}
        event = api_event("GET", "/images", query=query)
        event["multiValueQueryStringParameters"] = {"tag": list(tags)}
        answer = answer_json(handlers.images(event, None, stack.env))
        return sorted(image["imageId"] for image in answer["images"]), answer["filter"]

    assert listed("trip=Iceland") == (sorted([iceland, both]), {"tag": ["trip=Iceland"]})
    assert listed("TRIP=Iceland", "camera")[0] == [both]
    assert listed("trip=iceland")[0] == []  # values are exact
    assert listed("camera=x100")[0] == [both]
    assert bare not in listed("trip")[0]
    refused = handlers.images(api_event("GET", "/images", query={"tag": "a b"}), None, stack.env)
    assert refused["statusCode"] == 400 and answer_json(refused)["field"] == "tag"

"""Cheaper answers from moto for what the local stack does most: DynamoDB results and queries.

moto (5.2) turns every result into its wire form with a generic, model-driven serializer that
looks each member of each shape up under several spellings. For DynamoDB's item operations
that is most of the work: a GetItem of ten attributes walks about a hundred members, 60 % of
what the stack spends answering it, and a 1,000-image page of a listing pays it a thousand
times. Their results are already in wire form (``{"Item": {"name": {"S": "x"}}}``), so
writing them as JSON gives the same answer. Only results made of plain JSON values take this
path; anything else (bytes, timestamps, objects) goes to moto's serializer as before, and so
does every other service.

moto's Query also starts from ``Table.all_items()``, which sorts every item of the table by
its key, comparing moto's DynamoType objects, only for Query to pick the few items with the
asked hash key and sort those again. That sort was most of a duplicate lookup (one Query per
upload) and of a listing page once a gallery holds thousands of images. Within a Query the
items are taken unsorted: what Query returns is sorted by its own keys, so nothing changes.
And that second sort compares moto's DynamoType objects, a Python method call (and a cast
of the value) per comparison; it now sorts on the plain values (strings and numbers, as those
comparisons do), computed once per item, falling back to moto's sort for any other type.

A Query of an index compared every item of the table with the asked hash key as moto's
DynamoType objects (a Python method call and a cast per item): a duplicate lookup by SHA-256
cost a millisecond and more per thousand images in the table, a fifth of an upload's cost on
the stack. When the hash key conditions are strings, the items are first narrowed to those
holding exactly these strings (the same test, on plain values); moto's own test then runs on
what is left, as before. For a table with a hash key only (imgup's), those items come from an
index of each asked attribute's string values (``_StringIndex``): a duplicate lookup no longer
walks the table (1 ms per upload at 1,000 images before; it grew with the gallery).

A Query or GetItem with a ProjectionExpression (every listing page asks for the attributes
an image needs) had moto turn each item into plain JSON, look each name up as a path, merge
the pieces, and serialise the result back, item by item: 60 % of a 1,000-image page. A
projection of top-level names keeps those attributes as they are, which is what that round
trip gives for strings, numbers, booleans, sets, lists and maps without binary values; any
other projection (nested paths, binary values) goes to moto's as before.

moto's ListObjectVersions deep-copies every version of every key in the bucket, sorts them
all, and only then keeps those under the asked prefix: deleting one image (all versions of its
key, then of its thumbnail's) cost 200 to 400 ms in a gallery of 1,000, and grew with it.
Within that call the bucket now offers only the keys under the prefix; the rest were skipped
by the prefix test anyway (they sort outside the prefix's contiguous run of names).

And before every action, moto lists the methods of the request's handler class
(``inspect.getmembers``, about 300 members for DynamoDB) to see whether the action is one of
them; the classes never change in a running stack, so the list is made once per class.

moto parses a condition expression into a tree of operations twice per conditional write (to
check the names it uses, then to evaluate it), a third of a conditional PutItem. The tree
depends only on the expression, its names and its values, and evaluating it changes nothing,
so one tree is kept per distinct expression, names and values (the 1,024 last ones).

moto builds an item attribute by attribute into a dictionary that, before each one, sums the
size of all those already there, to refuse an item over DynamoDB's limit: quadratic in the
attributes, a twentieth of the stack's time per upload for records of twenty attributes. The
same sums are kept as a running total, and the same limit refuses the same items.

Every look-up of a service's backend by account (several per request: the service's own,
IAM's to note the access key as used) checked whether that service's backend dictionary is
in moto's list of the ones in use by comparing it with each of them in turn, a Python
``__eq__`` call per service moto has: 7 % of the stack's time per upload. A dictionary that
already holds the account was put in that list when it got it, and moto's reset empties both
together, so that check is skipped for it.

moto gives every answer a request id of 52 random letters and digits, drawn one Python call
at a time (18 us; several answers per upload, on the stack's busiest thread). They are drawn
with one ``choices`` call of the same generator instead (4 us): the same length, alphabet
and distribution, and still reproducible when moto's generator is seeded.

moto sets each request's handler up from a werkzeug request, and walks a DynamoDB body's
JSON through the operation's model; for the handlers' own calls that setup cost as much as
the operation. ``dynamodb_handler`` sets the same attributes from the WSGI environ, with the
parameters from ``json.loads`` (the server calls it; it patches nothing).

And moto answers an object GET through a handler set up from a werkzeug request, then a
policy check, access logging and two look-ups of the key: the verification read of each
upload was the costliest of the handlers' calls on the stack (0.9 ms of its CPU here, against
0.3 ms now). ``s3_object_get`` answers a plain signed GetObject from moto's backend with the
headers and bytes moto's ``get_object`` gives (the server calls it; it patches nothing).

``tests/unit/test_local_fastpaths.py`` holds the answers equal with and without both;
``tests/unit/test_local_inprocess.py`` the answers of ``dynamodb_handler`` equal to those
through moto's Flask application, and those of ``s3_object_get`` to moto's own handler's.
"""

from __future__ import annotations

import io
import json
import re
import threading
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qsl, urlparse

_FAST = "_imgup_fast"
_in_query = threading.local()


def install() -> None:
    """Install all ten, and the S3 read fix (idempotent)."""
    install_deleted_key_reads()
    _install_random_strings()
    _install_top_level_projection()
    _install_plain_results()
    _install_unsorted_query_items()
    _install_method_names_once()
    _install_prefix_listing()
    _install_known_accounts()
    _install_parsed_conditions()
    _install_item_sizes()
    _install_string_index()


class _Property(property):
    """A property that can carry the marks of ``_replace``."""


def install_deleted_key_reads() -> None:
    """Reading an S3 object that is being deleted answers as S3 does, not with a crash.

    moto closes a deleted version's buffer without taking the lock its reads hold, so a GET
    that had found the version a moment before failed with "I/O operation on closed file"
    (the local stack answered 500; moto in-process raised it into the caller). That is a
    verification read racing a rejection that deletes the object, which the complete call
    and the S3 event do by design. Now the buffer is closed under that lock, and a read
    after it answers NoSuchKey, one of S3's two answers to a GET racing a DELETE (the other
    being the bytes)."""
    from moto.s3.exceptions import MissingKey
    from moto.s3.models import FakeKey

    dispose, value = FakeKey.dispose, cast(property, FakeKey.__dict__["value"])
    if getattr(dispose, _FAST, False):
        return

    def locked_dispose(self: Any, garbage: bool = False) -> None:
        lock = getattr(self, "lock", None)
        if lock is None:
            dispose(self, garbage)
            return
        with lock:
            dispose(self, garbage)

    getter = cast(Any, value.fget)

    def read(self: Any) -> bytes:
        try:
            data: bytes = getter(self)
        except ValueError:
            if getattr(self, "disposed", False):
                raise MissingKey(key=self.name) from None
            raise
        return data

    _replace(FakeKey, "dispose", locked_dispose, dispose)
    _replace(FakeKey, "value", _Property(read, value.fset, value.fdel, value.__doc__), value)


def _install_random_strings() -> None:
    import string

    from moto.moto_api._internal.moto_random import MotoRandom

    original = MotoRandom.get_random_string
    if getattr(original, _FAST, False):
        return

    def get_random_string(
        self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    _replace(MotoRandom, "get_random_string", get_random_string, original)


def _install_item_sizes() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    original = Item.__init__
    if getattr(original, _FAST, False):
        return

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = LimitedSizeDict()
        total = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            total += bytesize(key) + typed.size()  # what LimitedSizeDict sums anew per attribute
            if total > _ITEM_LIMIT:
                raise ItemSizeTooLarge
            dict.__setitem__(self.attrs, key, typed)

    _replace(Item, "__init__", init, original)


_ITEM_LIMIT = 405_000  # moto's LimitedSizeDict: between DynamoDB's measured 409 and 410 KB


_CONDITIONS_KEPT = 1024


def _install_parsed_conditions() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = ConditionExpressionParser.parse
    if getattr(original, _FAST, False):
        return
    parsed: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}
    lock = threading.Lock()

    def parse(self: Any) -> Any:
        try:
            key = (
                str(self.condition_expression or ""),
                json.dumps(self.expression_attribute_names, sort_keys=True),
                json.dumps(self.expression_attribute_values, sort_keys=True),
            )
        except (TypeError, ValueError):
            return original(self)
        found = parsed.get(key)
        if found is None:
            op = original(self)  # an expression that does not parse raises, and is not kept
            found = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            with lock:
                if len(parsed) >= _CONDITIONS_KEPT:
                    parsed.clear()
                parsed[key] = found
            return op
        op, names, values = found
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return op

    _replace(ConditionExpressionParser, "parse", parse, original)


def _install_known_accounts() -> None:
    from moto.core.base_backend import BackendDict

    original = BackendDict._create_account_specific_backend
    if getattr(original, _FAST, False):
        return

    def create(self: Any, account_id: str) -> None:
        if dict.__contains__(self, account_id):
            return  # moto listed this dictionary when it first got an account (see above)
        original(self, account_id)

    _replace(BackendDict, "_create_account_specific_backend", create, original)


_listing = threading.local()
_PLAIN_TYPES = frozenset({"S", "N", "BOOL", "NULL", "SS", "NS"})


def _install_top_level_projection() -> None:
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.project
    if getattr(original, _FAST, False):
        return

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        names = [expression[0] for expression in projection_expressions if len(expression) == 1]
        if len(names) != len(projection_expressions) or any("[" in name for name in names):
            return original(self, projection_expressions)
        kept = {name: self.attrs[name] for name in dict.fromkeys(names) if name in self.attrs}
        if not all(_without_binary(value) for value in kept.values()):
            return original(self, projection_expressions)
        return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=kept)

    _replace(Item, "project", project, original)


def _without_binary(value: Any) -> bool:
    """Whether a DynamoType holds no binary value at any depth."""
    if value.type in _PLAIN_TYPES:
        return True
    if value.type == "M":
        return all(_without_binary(nested) for nested in value.value.values())
    if value.type == "L":
        return all(_without_binary(nested) for nested in value.value)
    return False


def _install_prefix_listing() -> None:
    import inspect

    from moto.s3.models import S3Backend
    from moto.s3.utils import _VersionedKeyStore

    original = S3Backend.list_object_versions
    if getattr(original, _FAST, False):
        return
    signature = inspect.signature(original)
    iterlists = _VersionedKeyStore.iterlists

    def list_object_versions(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
            prefix = bound.arguments.get("prefix") or ""
            store = self.get_bucket(bound.arguments["bucket_name"]).keys if prefix else None
        except Exception:  # noqa: BLE001 - moto's own call says what is wrong
            store = None
        if store is None:
            return original(self, *args, **kwargs)
        _listing.active = (store, prefix)
        try:
            return original(self, *args, **kwargs)
        finally:
            _listing.active = None

    def prefixed_iterlists(self: Any) -> Any:
        active = getattr(_listing, "active", None)
        if active is None or active[0] is not self:
            yield from iterlists(self)
            return
        prefix = active[1]
        for key in list(dict.keys(self)):  # a copy, as moto's own iteration takes
            if key.startswith(prefix):
                yield key, self.getlist(key)

    _replace(S3Backend, "list_object_versions", list_object_versions, original)
    _replace(_VersionedKeyStore, "iterlists", prefixed_iterlists, iterlists)


def _install_method_names_once() -> None:
    import functools

    from moto.core import responses

    original = responses.method_names_from_class
    if getattr(original, _FAST, False):
        return
    listed: Any = functools.lru_cache(maxsize=None)(lambda clazz: frozenset(original(clazz)))
    _replace(responses, "method_names_from_class", listed, original)


def _install_unsorted_query_items() -> None:
    from moto.dynamodb.models.table import Table

    query, all_items, sorted_items = Table.query, Table.all_items, Table.sorted_items
    if getattr(query, _FAST, False):
        return

    def unsorted_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        _in_query.active = True
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        _in_query.strings = _string_equalities(kwargs.get("hash_key_conditions")) if index_name else None
        try:
            return query(self, *args, **kwargs)
        finally:
            _in_query.active = False
            _in_query.strings = None

    def items(self: Any) -> Any:
        if not getattr(_in_query, "active", False):
            return all_items(self)
        entries = self.items.values()
        every = (i for entry in entries for i in entry.values()) if self.range_key_attr else entries
        strings = getattr(_in_query, "strings", None)
        if strings and len(strings) == 1 and not self.range_key_attr:
            ((name, want),) = strings
            return _StringIndex.of(self).items(name, want)
        if strings and len(strings) == 1:
            ((name, want),) = strings
            return [
                i for i in every if (v := i.attrs.get(name)) is not None and v.value == want and v.type == "S"
            ]
        if strings:
            return [item for item in every if all(_is_string(item.attrs.get(n), v) for n, v in strings)]
        return list(every)

    def plain_sorted_items(self: Any, hash_attrs: Any, range_attrs: Any, found: list[Any]) -> Any:
        names = self._generate_attr_to_sort_by(hash_attrs, range_attrs)
        try:
            keys = {id(item): tuple(_plain_key(item.attrs[name]) for name in names) for item in found}
            found.sort(key=lambda item: keys[id(item)])
        except (TypeError, KeyError, ValueError):
            return sorted_items(self, hash_attrs, range_attrs, found)
        return found

    _replace(Table, "query", unsorted_query, query)
    _replace(Table, "all_items", items, all_items)
    _replace(Table, "sorted_items", plain_sorted_items, sorted_items)


_INDEX = "_imgup_string_index"
_index_lock = threading.RLock()


class _StringIndex:
    """For a table with a hash key only: which items hold each string value of an attribute
    that an index Query asked about (moto finds them by walking the whole table, so the
    duplicate check before each upload cost O(gallery): 1 ms of the stack per upload at
    1,000 images, measured). Built on the first Query for an attribute, kept up to date by
    moto's put, delete and update of an item, and dropped by anything else that writes
    (transactions, PartiQL, restores replace tables or items wholesale). A lookup returns
    only items that hold the value now; moto then filters, sorts and pages them as ever."""

    def __init__(self, table: Any) -> None:
        self.items_of = table.items  # moto replaces this dict when it restores a table
        self.keys: dict[str, dict[str, set[Any]]] = {}  # attribute -> value -> hash keys
        self.value_of: dict[str, dict[Any, str]] = {}  # attribute -> hash key -> value

    @classmethod
    def of(cls, table: Any) -> _StringIndex:
        with _index_lock:
            index = table.__dict__.get(_INDEX)
            if index is None or index.items_of is not table.items:
                index = table.__dict__[_INDEX] = cls(table)
            return index

    def items(self, name: str, want: str) -> list[Any]:
        with _index_lock:
            if name not in self.keys:
                self.keys[name], self.value_of[name] = {}, {}
                for key in self.items_of:
                    self._add(name, key)
            found = []
            for key in list(self.keys[name].get(want, ())):
                item = self.items_of.get(key)
                if item is not None and _is_string(item.attrs.get(name), want):
                    found.append(item)
            return found

    def changed(self, key: Any) -> None:
        with _index_lock:
            for name in self.keys:
                old = self.value_of[name].pop(key, None)
                if old is not None:
                    self.keys[name][old].discard(key)
                self._add(name, key)

    def _add(self, name: str, key: Any) -> None:
        item = self.items_of.get(key)
        value = item.attrs.get(name) if item is not None else None
        if value is not None and value.type == "S" and isinstance(value.value, str):
            self.keys[name].setdefault(value.value, set()).add(key)
            self.value_of[name][key] = value.value


def _index_changed(table: Any, key: Any) -> None:
    index = table.__dict__.get(_INDEX) if table is not None else None
    if index is not None:
        if index.items_of is table.items:
            index.changed(key)
        else:
            table.__dict__.pop(_INDEX, None)


def _install_string_index() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(Table.put_item, _FAST, False):
        return
    put_item, delete_item, update_item = Table.put_item, Table.delete_item, DynamoDBBackend.update_item

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = put_item(self, *args, **kwargs)
        _index_changed(self, item.hash_key)
        return item

    def delete(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        item = delete_item(self, hash_key, *args, **kwargs)
        _index_changed(self, hash_key)
        return item

    def update(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return update_item(self, table_name, key, *args, **kwargs)
        finally:  # also when a condition failed: the index then looks again and finds the same
            table = self.tables.get(table_name)
            if table is not None and table.hash_key_attr in key:
                _index_changed(table, DynamoType(key[table.hash_key_attr]))

    _replace(Table, "put_item", put, put_item)
    _replace(Table, "delete_item", delete, delete_item)
    _replace(DynamoDBBackend, "update_item", update, update_item)
    for name in _WHOLESALE_WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is not None:
            _replace(DynamoDBBackend, name, _dropping_indexes(original), original)


# What writes items otherwise than one put, delete or update at a time: the indexes are dropped.
_WHOLESALE_WRITES = (
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "restore_table_from_backup",
    "restore_table_to_point_in_time",
    "import_table",
)


def _dropping_indexes(original: Any) -> Any:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            with _index_lock:
                for table in list(self.tables.values()):
                    table.__dict__.pop(_INDEX, None)

    return wrapper


def _string_equalities(conditions: Any) -> list[tuple[str, str]] | None:
    """An index Query's hash key conditions as (attribute, string), when every one of them
    is a string (else None: the Query then looks at every item, as moto's does)."""
    if not conditions:
        return None
    found = []
    for name, value in conditions:
        if getattr(value, "type", None) != "S" or not isinstance(value.value, str):
            return None
        found.append((name, value.value))
    return found


def _is_string(value: Any, expected: str) -> bool:
    return value is not None and value.type == "S" and value.value == expected


def _replace(owner: Any, name: str, wrapper: Any, original: Any) -> None:
    """Put ``wrapper`` in place of moto's ``original`` ``owner.name``, marked as a fast path
    (so that installing again changes nothing) and pointing back at it (``__wrapped__``)."""
    setattr(wrapper, _FAST, True)
    wrapper.__wrapped__ = original
    setattr(owner, name, wrapper)


def _plain_key(value: Any) -> Any:
    """What moto compares a key attribute by (``DynamoType.__lt__``: its ``cast_value``), for
    strings and numbers; TypeError for any other type, to sort as moto does."""
    if value.type in ("S", "N"):
        return value.cast_value
    raise TypeError(value.type)


_empty_answers: dict[tuple[str, Any], tuple[int, dict[str, str]]] = {}


def _install_plain_results() -> None:
    """Wrap moto's ActionResult.execute_result once (idempotent)."""
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result
    if getattr(original, _FAST, False):
        return

    def execute_result(self: Any, context: Any) -> Any:
        # ActionResult and its kin that do not serialize otherwise (DynamoResult), not
        # PaginatedResult, which pages its result first.
        owner = next(c for c in type(self).__mro__ if "execute_result" in c.__dict__)
        if owner is ActionResult and context.service_model.service_name == "dynamodb":
            body = plain_json(self.result, _members(context.operation_model))
            if body is not None:
                # The status and headers of a result are those of an empty one, which depend
                # only on the operation and the protocol: serialized once (moto walks the
                # output shape even for nothing, a third of a PutItem's answer).
                key = (context.operation_model.name, context.serializer_class)
                if key not in _empty_answers:
                    status, headers, _ = original(ActionResult({}), context)
                    _empty_answers[key] = (status, dict(headers))
                status, headers = _empty_answers[key]
                return status, dict(headers), body
        return original(self, context)

    _replace(ActionResult, "execute_result", execute_result, original)


def plain_json(result: Any, members: frozenset[str] | None = None) -> str | None:
    """``result`` as compact JSON, as moto's serializer writes it: None members left out, and
    (with ``members``, the output shape's) no top-level key the answer does not have. None
    when it holds anything but dicts, lists, strings, numbers and booleans."""
    if not isinstance(result, dict):
        return None
    if members is not None:
        result = {k: v for k, v in result.items() if k in members}
    try:
        return json.dumps(_without_none(result), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _members(operation_model: Any) -> frozenset[str]:
    shape = operation_model.output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


# --- DynamoDB requests set up without werkzeug's request ---------------------------------------

_DYNAMODB_TARGET = "DynamoDB_20120810."
_BINARY_MEMBERS = ('"B"', '"BS"')


def dynamodb_handler(environ: dict[str, Any]) -> Any:
    """moto's DynamoDB handler for this request, ready for ``call_action``, or None to let
    moto set it up itself (``DynamoHandler.dispatch``).

    moto sets a handler up from a werkzeug request: it parses the form data and the query
    string, rebuilds the URL, reads each header through the WSGI environ and walks the
    body's JSON through the operation's model. For the handlers' own calls (three per
    upload) that setup cost as much as the operation itself: a third of the stack's time
    per upload. A DynamoDB request is a JSON body and a target header; what moto's model
    walk makes of such a body is the body's JSON as it is, except binary values (``B``,
    ``BS``: base64 in the JSON, bytes once parsed). So the handler gets the same attributes
    from the environ directly, and the parameters from ``json.loads``. A request with a
    binary value anywhere (even inside a string: the test is on the text), a compressed
    body, a body that is not a JSON object, or another target is left to moto."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    stream = environ.get("wsgi.input")
    if (
        not target.startswith(_DYNAMODB_TARGET)
        or environ.get("REQUEST_METHOD") != "POST"
        or environ.get("HTTP_CONTENT_ENCODING")
        or not isinstance(stream, io.BytesIO)
    ):
        return None
    raw = stream.getvalue()
    try:
        text = raw.decode("utf-8")
        params = json.loads(text) if not any(m in text for m in _BINARY_MEMBERS) else None
    except ValueError:  # UnicodeDecodeError is one too
        return None
    if not isinstance(params, dict):
        return None
    from moto.core.request import EnvironHeaders
    from moto.dynamodb.responses import DynamoHandler
    from moto.utilities.utils import get_partition
    from werkzeug.datastructures import ImmutableMultiDict

    handler: Any = DynamoHandler()  # attributes as setup_class sets them
    headers = EnvironHeaders(environ)
    path = environ.get("PATH_INFO") or "/"
    query = environ.get("QUERY_STRING", "")
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}{path}"
    url += f"?{query}" if query else ""
    handler.is_werkzeug_request = True  # as moto's own server: the server adds the Date
    handler.normalized_request = None
    handler.parsed_url = urlparse(url)
    handler.body, handler.raw_body = text, raw
    handler.form_data = ImmutableMultiDict()
    handler.querystring = handler.data = {}
    handler.uri, handler.path, handler.raw_path = url, handler.parsed_url.path, path
    handler.method = "POST"
    handler.uri_match = {}
    handler.headers = headers
    handler.response_headers = {"server": "amazon.com"}
    handler.params = params
    _identify(handler, url)
    handler.partition = get_partition(handler.region)
    return handler


def _identify(handler: Any, url: str) -> None:
    """What moto's ``setup_class`` ends with, from the handler's ``headers`` and
    ``querystring``: the request's region, access key and account, the account marked as
    visited with IAM."""
    from moto.iam.models import mark_account_as_visited

    handler.region = handler.get_region_from_url(SimpleNamespace(headers=handler.headers), url)
    handler.access_key = handler.get_access_key()
    handler.current_account = handler.get_current_account()
    mark_account_as_visited(
        account_id=handler.current_account,
        access_key=handler.access_key,
        service=handler.service_name,
        region=handler.region,
    )


# --- S3 object reads answered from moto's backend --------------------------------------------

_LOCAL_HOST = re.compile(r"(?:127\.0\.0\.1|localhost)(?::\d+)?")
_PLAIN_OBJECT_PATH = re.compile(r"/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([A-Za-z0-9._/-]+)")
_READ_QUERY = frozenset({"versionId", "x-id"})
_READ_CONDITIONS = (
    "HTTP_RANGE",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_ALGORITHM",
)


def s3_object_get(environ: dict[str, Any]) -> tuple[int, dict[str, Any], bytes] | None:
    """moto's answer to a plain GetObject, from its S3 backend, or None to let moto answer.

    moto answers an object GET with a handler set up from a werkzeug request (the form, the
    query string and the URL parsed, every header read through the environ), a bucket policy
    check, access logging, the key looked up twice and the answer enriched: for the
    verification read of each upload (one per file, by the handlers) that cost more than
    any other call the handlers make. A signed GET of an existing object on a local
    path-style URL, with no query but its version (and the SDK's ``x-id``), no Range, no
    condition and no customer key, is answered here with what moto's ``get_object`` gives:
    its headers from the key (version, ``response_dict``, the checksum when asked for,
    metadata, ``Accept-Ranges``) and its bytes, through moto's own ``_send_response``.
    Anything else (a missing bucket, key or version, an archived object, a bucket policy
    that denies, access logging on, IAM authorization on) is left to moto, errors included.
    ``tests/unit/test_local_inprocess.py`` holds the two answers equal."""
    if environ.get("REQUEST_METHOD") != "GET" or not environ.get("HTTP_AUTHORIZATION"):
        return None
    if not _LOCAL_HOST.fullmatch(environ.get("HTTP_HOST", "")) or environ.get("CONTENT_LENGTH") not in (
        None,
        "",
        "0",
    ):
        return None
    if any(environ.get(name) for name in _READ_CONDITIONS):
        return None
    path = environ.get("PATH_INFO", "")
    match = _PLAIN_OBJECT_PATH.fullmatch(path)
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or path
    if match is None or raw_path.partition("?")[0] != path:
        return None
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    names = [name for name, _ in query]
    if len(set(names)) != len(names) or not _READ_QUERY.issuperset(names):
        return None
    given = dict(query)
    if given.get("x-id", "GetObject") != "GetObject":
        return None
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.request import EnvironHeaders
    from moto.iam.access_control import PermissionResult
    from moto.s3.exceptions import S3ClientError
    from moto.s3.models import s3_backends
    from moto.s3.responses import (
        ARCHIVE_STORAGE_CLASSES,
        DEFAULT_REGION_NAME,
        S3Response,
        extract_region_from_aws_authorization,
    )
    from moto.utilities.utils import get_partition

    if ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
        return None  # IAM authorization is on: moto checks the signature and the policy
    headers = EnvironHeaders(environ)
    handler: Any = S3Response()  # what setup_class sets for the look-ups below
    handler.headers = headers
    handler.querystring = {name: [value] for name, value in query}
    _identify(handler, f"http://{environ['HTTP_HOST']}{raw_path}")
    region = extract_region_from_aws_authorization(environ["HTTP_AUTHORIZATION"]) or DEFAULT_REGION_NAME
    partition = get_partition(region)
    backend = s3_backends[handler.current_account][partition]
    bucket_name, key_name = match.groups()
    try:
        bucket = backend.get_bucket(bucket_name)
        key = backend.get_object(bucket_name, key_name, version_id=given.get("versionId"))
    except S3ClientError:
        return None
    if key is None or bucket.logging or key.storage_class in ARCHIVE_STORAGE_CLASSES:
        return None
    resource = f"arn:{bucket.partition}:s3:::{bucket_name}/{key_name}"
    if bucket.get_permission("s3:GetObject", resource) == PermissionResult.DENIED:
        return None
    ActionAuthenticatorMixin.request_count += 1  # as moto's authorization step counts it
    answer: dict[str, Any] = {}
    if key.version_id != "null":
        answer["x-amz-version-id"] = key.version_id
    answer.update(key.response_dict)
    if headers.get("x-amz-checksum-mode") == "ENABLED" and key.checksum_algorithm:
        checksum = key.checksum_value
        if key.checksum_type == "COMPOSITE":
            checksum = f"{key.checksum_value}-{key.checksum_parts}"
        answer[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = checksum
        if key.checksum_type:
            answer["x-amz-checksum-type"] = key.checksum_type
    answer.update(key.metadata)
    answer["Accept-Ranges"] = "bytes"
    status, answered, body = S3Response._send_response((200, answer, key.value))
    return status, answered, body.encode("utf-8") if isinstance(body, str) else body

"""Where moto (and botocore) are slow for a days-long simulation, made fast without changing what they do.

* DynamoDB ``TransactWriteItems`` deep-copies every table it touches before applying the writes, so it
  can roll back: O(table size) per call, about a second per transaction once a demo table holds tens of
  thousands of items. A rollback only ever needs the items the transaction names, so here those alone
  are saved, and put back if the transaction is cancelled, and the stream records its writes made before the
  cancelling condition are dropped (moto's own rollback restores the table, stream included). The state after
  a rollback is the same.
* A DynamoDB ``Query`` on a global secondary index walks every item of the table (about a second per query once
  a demo table holds thirty thousand items, and the due index is read every simulated minute), keeps those whose
  hash key equals the query's, and sorts them. A global index holds only the items that carry its key attributes,
  so each index's items are kept by partition, updated from the keys every write names, and only the queried
  partition is walked: the same items kept, sorted by moto as before. Each partition's range key values are also
  kept in order, for the emulated scheduler to find the next index time by bisection (``index_ranges``).
* A ``Query`` of the base table does the same: it walks the whole table, sorted, to keep the items of one
  partition (about 70 ms per query on a demo's table). Only that partition is walked now; the query sorts
  its items by range key itself: the same answer.
* moto's JSON request parser looks every member of a structure's shape up in its value (ten per DynamoDB attribute
  value, of which one is there); it looks the value's own keys up instead, keeping the shape's order.
* DynamoDB parses an update expression twice per ``UpdateItem`` (to check its names and values, then to apply
  it) and lexes a condition expression character by character, compiling its patterns again for each token. The
  update's syntax tree is parsed once per expression (moto's validator works on a copy of it, never on the tree
  itself: now unpickled from the tree's pickle rather than deep-copied) and a condition's tokens are lexed once
  per expression (tokens are immutable; the nodes built from them are new): the same trees. Of the ten passes
  moto's validator makes over an update's tree, three only check the expression (one clause of a kind, paths that
  do not overlap, no key attribute updated): once they passed on a tree with the same names and table keys, they
  are not run again; and each pass builds its map of node classes to methods once, not at every node.
* For each request moto matches the URL against the patterns of every service it knows (a few hundred), builds
  the matching backend's URL table and matches it again; botocore builds its User-Agent header twice, sanitizing
  each component character by character. Which service and which handler a URL goes to, and the header a client
  builds for a set of request features, are the same every time: they are remembered.
* EventBridge ``PutEvents`` compiles the same JSONPath expressions (``$.detail``…) for every event it
  routes; compiled expressions are immutable, so they are compiled once.
* Request ids, message ids and SQS receipt handles are drawn one character per ``random.choice`` call (185 for a
  receipt handle): about a second of every thousand receives. ``random.choices`` draws the same kind of string, from
  the same (seedable) generator, in one call.
* Every request lists its response class's methods (``inspect.getmembers`` over the class), every SQS queue
  attribute is named by converting CamelCase afresh, and checking a received message's retention builds every
  attribute of its queue (counting its messages) twice to read one: about a tenth of a demo's CPU. The method
  names and conversions are computed once; the retention is read directly.
* moto serializes every response by walking the operation's output shape, and for each member of each value it
  builds an alias provider per candidate name (six of them, each tried as is and in snake case): ten members per
  DynamoDB attribute value, about a tenth of a demo's time in all. For a plain dict the candidates depend only on the
  member's name and shape (a dict has no ``Meta`` and its class is always ``dict``), so they are found once per
  shape and looked up directly, in one loop over a structure's members: the same value is picked.
* moto reads the clock through ``utcnow``/``unix_time``, which run an import statement and build the epoch anew on
  each call, and SQS reads it once per message of a queue to count its visible messages, for every message sent.
  The same arithmetic, without those, is put wherever moto uses them, and a queue's counts read the clock once.

And one place where moto is less faithful than AWS: its request handlers are not atomic across threads
(a conditional write checks, then writes, and another thread can run in between), whereas every DynamoDB
request is. ``install()`` serializes moto's request dispatch, so concurrent workers race exactly as they
would against DynamoDB: on whole requests.

``install()`` is idempotent and only used by the local emulation and tests, never by the functions.
"""

from __future__ import annotations

import bisect
import collections
import contextvars
import copy
import functools
import pickle
import re
import types
from collections import defaultdict
from typing import Any

_touched: contextvars.ContextVar[bool] = contextvars.ContextVar("touched", default=False)
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _fast_transaction_snapshots()
    _fast_index_queries()
    _clock_without_imports()
    _queue_counts_at_one_instant()
    _compiled_jsonpath()
    _parsed_expressions_once()
    _processing_maps_once()
    _structures_parsed_by_present_members()
    _remembered_routes()
    _sanitized_user_agent_once()
    _remembered_response_keys()
    _cached_lookups()
    _fast_random_strings()
    _atomic_requests()


def _fast_transaction_snapshots() -> None:
    from moto.dynamodb.models import DynamoDBBackend, DynamoType
    from moto.dynamodb.models import table as table_module

    models = __import__("moto.dynamodb.models", fromlist=["copy"])
    original = DynamoDBBackend.transact_write_items
    missing = object()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if _touched.get() and isinstance(value, table_module.Table):
            return value  # restored item by item below instead
        return copy.deepcopy(value, memo)

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName", ""))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            holder = table.items.get(hash_value, {}) if range_value is not None else table.items
            slot = range_value if range_value is not None else hash_value
            before = holder.get(slot, missing)
            saved.append((table, hash_value, range_value, before if before is missing else copy.deepcopy(before)))
        streams = {id(t): (t.stream_shard, len(t.stream_shard.items)) for t, *_ in saved if t.stream_shard is not None}
        token = _touched.set(True)
        try:
            return original(self, transact_items)
        except Exception:
            for shard, recorded in streams.values():  # a cancelled transaction wrote nothing: no stream record
                del shard.items[recorded:]
            for table, hash_value, range_value, item in reversed(saved):
                holder = table.items[hash_value] if range_value is not None else table.items
                slot = range_value if range_value is not None else hash_value
                if item is missing:
                    holder.pop(slot, None)
                else:
                    holder[slot] = item
                members_of(table).dirty.add((hash_value, range_value))
            raise
        finally:
            _touched.reset(token)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _Index:
    """The items of one global index: by partition (the value of its hash key), each partition's range key values
    in order (a multiset, for the emulation's scheduler to find the first at or after a time by bisection)."""

    def __init__(self, hash_attr: str, range_attr: str | None) -> None:
        self.hash_attr, self.range_attr = hash_attr, range_attr
        self.placed: dict[Any, tuple[Any, Any]] = {}
        """Slot -> (partition, range value) where the item was filed (its attributes may change in place since)."""
        self.partitions: defaultdict[Any, dict[Any, Any]] = defaultdict(dict)
        self.ranges: defaultdict[Any, list[Any]] = defaultdict(list)

    def file(self, slot: Any, item: Any) -> None:
        """File the item now at ``slot`` (None: there is none), where it was filed before removed."""
        if (before := self.placed.pop(slot, None)) is not None:
            partition, value = before
            del self.partitions[partition][slot]
            if self.range_attr is not None:
                values = self.ranges[partition]
                del values[bisect.bisect_left(values, value)]
        if item is None or self.hash_attr not in item.attrs or (self.range_attr and self.range_attr not in item.attrs):
            return  # a sparse index holds only the items carrying its keys
        partition = _partition(item.attrs[self.hash_attr])
        value = item.attrs[self.range_attr].cast_value if self.range_attr else None
        self.placed[slot] = (partition, value)
        self.partitions[partition][slot] = item
        if self.range_attr is not None:
            bisect.insort(self.ranges[partition], value)


def _partition(value: Any) -> tuple[str, Any]:
    """A hash key value as DynamoDB compares them (moto's ``DynamoType`` equality: type and typed value)."""
    return value.type, value.cast_value


class _IndexMembers:
    """Per table, the items each global index holds (those carrying its key attributes), kept up to date from
    the keys every write names instead of by walking the table."""

    def __init__(self) -> None:
        self.indexes: dict[str, _Index] = {}
        self.dirty: set[Any] = set()

    def of(self, table: Any, name: str) -> _Index:
        if name not in self.indexes:
            [schema] = [i.schema for i in table.global_indexes if i.name == name]
            keys = {k["KeyType"]: k["AttributeName"] for k in schema}
            index = self.indexes[name] = _Index(keys["HASH"], keys.get("RANGE"))
            for holder in table.items.values():
                for item in holder.values() if table.range_key_attr else [holder]:
                    index.file(_slot(item), item)
        if self.dirty:
            for slot in self.dirty:
                holder = table.items.get(slot[0])
                item = holder.get(slot[1]) if holder is not None and table.range_key_attr else holder
                for index in self.indexes.values():
                    index.file(slot, item)
            self.dirty.clear()
        return self.indexes[name]


def _slot(item: Any) -> tuple[Any, Any]:
    return item.hash_key, item.range_key


def members_of(table: Any) -> _IndexMembers:
    members = getattr(table, "_index_members", None)
    if members is None:
        members = table._index_members = _IndexMembers()
    return members


def _simple(table: Any, index_name: str) -> bool:
    """A global index of the table keyed by one hash attribute and at most one range attribute (DynamoDB also allows
    several of each, which are left to moto)."""
    schemas = [i.schema for i in table.global_indexes or () if i.name == index_name]
    return len(schemas) == 1 and [k["KeyType"] for k in schemas[0]] in (["HASH"], ["HASH", "RANGE"])


def index_ranges(table: Any, index_name: str) -> dict[Any, list[Any]]:
    """Per partition of a global index (by its hash key's typed value: ``("S", "3")``), the range key values it
    holds, in order; read-only."""
    return members_of(table).of(table, index_name).ranges


def _fast_index_queries() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models import table as table_module

    original_query = table_module.Table.query
    original_items = table_module.Table.all_items
    original_put = table_module.Table.put_item
    original_delete = table_module.Table.delete_item
    original_update = DynamoDBBackend.update_item
    queried: contextvars.ContextVar[tuple[str | None, Any] | None] = contextvars.ContextVar("queried", default=None)

    @functools.wraps(original_items)
    def all_items(self: Any) -> list[Any]:
        found = queried.get()
        if found is None:
            return original_items(self)
        name, hash_key = found
        if name is not None:  # a query of a global index: only the partition it names can match
            partition = _partition(hash_key)
            return list(members_of(self).of(self, name).partitions.get(partition, {}).values())
        holder = self.items.get(hash_key)  # a query of the base table: only its partition can match
        if holder is None:
            return []
        return list(holder.values()) if self.range_key_attr else [holder]

    @functools.wraps(original_query)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = args[7] if len(args) > 7 else kwargs.get("index_name")
        hash_key = args[0] if args else kwargs.get("hash_key")
        conditions = kwargs.get("hash_key_conditions") or []
        if name:  # moto keeps the items whose hash attributes equal the conditions', and sorts them itself
            simple = _simple(self, name) and len(conditions) == 1
            found = (name, conditions[0][1]) if simple else None
        else:
            found = (None, hash_key) if hash_key is not None else None
        token = queried.set(found)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            queried.reset(token)

    @functools.wraps(original_put)
    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        members_of(self).dirty.add(_slot(item))
        return item

    @functools.wraps(original_delete)
    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        members_of(self).dirty.add((hash_key, range_key))
        return original_delete(self, hash_key, range_key)

    @functools.wraps(original_update)
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            members_of(table).dirty.add(self.get_keys_value(table, key))

    table_module.Table.all_items = all_items  # type: ignore[method-assign]
    table_module.Table.query = query  # type: ignore[method-assign]
    table_module.Table.put_item = put_item  # type: ignore[method-assign]
    table_module.Table.delete_item = delete_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]


def _remembered_response_keys() -> None:
    from moto.core import serialize

    original = serialize.ResponseSerializer.get_value
    names: dict[tuple[str, Any, Any], tuple[str, ...] | None] = {}
    no_parent = object()

    def plain(serializer: Any, value: Any) -> bool:
        """A plain dict, picked by the default picker: whose candidate names depend on the member alone."""
        picker = serializer._value_picker
        return (
            type(value) is dict
            and type(picker) is serialize.XFormedAttributePicker
            and picker.alias_providers is serialize.DEFAULT_ALIAS_PROVIDERS
            and not picker.response_transformers
        )

    def candidates(picker: Any, key: str, shape: Any) -> tuple[str, ...] | None:
        slot = (key, shape, getattr(shape, "parent", no_parent))
        if slot not in names:  # a plain dict has no Meta, and its class name is always "dict": only these count
            context = serialize.AttributePickerContext(obj={}, key=key, shape=shape)
            found = tuple(picker.get_possible_keys(context))
            names[slot] = None if any("." in name for name in found) else found  # a dotted name is a path
        return names[slot]

    @functools.wraps(original)
    def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        if not plain(self, value) or (found := candidates(self._value_picker, key, shape)) is None:
            return original(self, value, key, shape)
        return next((value[name] for name in found if name in value), None)

    structure = serialize.BaseJSONSerializer._serialize_type_structure

    @functools.wraps(structure)
    def structure_of_dict(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        """``ResponseSerializer._serialize_type_structure`` and ``_serialize_structure_member`` in one loop, for a
        plain dict (most members of a DynamoDB attribute value are absent: each costed a call or two)."""
        if shape.is_document_type or not plain(self, value):
            return structure(self, serialized, value, shape, key)
        wrapper = self.MAP_TYPE() if key else serialized
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape
            found = candidates(self._value_picker, member_key, member_shape)
            if found is None:
                member = original(self, value, member_key, member_shape)
            else:
                member = next((value[name] for name in found if name in value), None)
            if member is not None:
                self._serialize(wrapper, member, member_shape, member_key)
        if key:
            self._default_serialize(serialized, wrapper, shape, key)

    serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign]
    serialize.JSONSerializer._serialize_type_structure = structure_of_dict  # type: ignore[method-assign]


def _structures_parsed_by_present_members() -> None:
    """moto's JSON request parser, for a structure, looks every member of the shape up in the value (ten members per
    DynamoDB attribute value, of which one is there); looking up the value's own keys finds the same members, which
    are parsed and kept in the shape's order as before."""
    from moto.core import parse

    original = parse.BaseJSONParser._parse_structure
    members: dict[Any, dict[str, tuple[int, str, Any]]] = {}

    @functools.wraps(original)
    def parse_structure(self: Any, shape: Any, value: Any) -> Any:
        if shape.is_document_type or type(value) is not dict:
            return original(self, shape, value)
        if (by_json_name := members.get(shape)) is None:
            by_json_name = members[shape] = {
                member.serialization.get("name", name): (order, name, member)
                for order, (name, member) in enumerate(shape.members.items())
            }
        present = sorted(by_json_name[key] for key in value if key in by_json_name and value[key] is not None)
        final_parsed = self.MAP_TYPE()
        for _, name, member in present:
            final_parsed[name] = self._parse_shape(member, value[member.serialization.get("name", name)])
        return final_parsed

    parse.BaseJSONParser._parse_structure = parse_structure  # type: ignore[method-assign]


def _parsed_expressions_once() -> None:
    from moto.dynamodb import comparisons
    from moto.dynamodb.parsing import expressions, validators

    parser: Any = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
    make = parser.make.__func__
    pickled: dict[int, tuple[Any, bytes]] = {}
    """id of a parsed tree -> (the tree, kept so the id stays its own; its pickle, for fresh copies)"""

    @functools.lru_cache(maxsize=4096)
    def parsed(expression: str) -> Any:
        tree = make(parser, expression)
        pickled[id(tree)] = (tree, pickle.dumps(tree))
        return tree

    @functools.wraps(make)
    def make_once(cls: Any, expression: str) -> Any:
        return parsed(expression) if cls is parser else make(cls, expression)

    parser.make = classmethod(make_once)

    def validator(
        self: Any,
        expression: Any,
        expression_attribute_names: dict[str, str],
        expression_attribute_values: dict[str, Any],
        item: Any,
        table: Any,
    ) -> None:
        """moto's ``Validator.__init__``: its own copy of the tree to validate, unpickled from the parsed tree's
        pickle (five times faster than the deep copy it made; the same tree)."""
        self.expression_attribute_names = expression_attribute_names
        self.expression_attribute_values = expression_attribute_values
        self.item = item
        self.table = table
        self.processors = self.get_ast_processors()
        known = pickled.get(id(expression))
        fresh = known is not None and known[0] is expression
        self.node_to_validate = pickle.loads(known[1]) if fresh else copy.deepcopy(expression)  # type: ignore[index]
        key = None
        if fresh and isinstance(self, validators.UpdateExpressionValidator):
            names = tuple(sorted((expression_attribute_names or {}).items()))
            key = (id(expression), names, tuple(table.table_key_attrs))
            if key in checked:  # these checks passed on this tree, with these names and keys
                self.processors = [p for p in self.processors if type(p) not in EXPRESSION_CHECKS]
        self.checked_before = key

    validators.Validator.__init__ = validator  # type: ignore[method-assign]
    validate = validators.Validator.validate
    checked: set[tuple[int, tuple[tuple[str, str], ...], tuple[str, ...]]] = set()
    EXPRESSION_CHECKS = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )

    @functools.wraps(validate)
    def validate_once(self: Any) -> Any:
        """moto's ``Validator.validate``; the checks that read only the expression, its names and the table's keys
        (they return every node as it is) are remembered when they pass, and not run again on the same."""
        validated = validate(self)
        if getattr(self, "checked_before", None) is not None:
            checked.add(self.checked_before)
        return validated

    validators.Validator.validate = validate_once  # type: ignore[method-assign]

    lex = comparisons.ConditionExpressionParser._lex_condition_expression
    lexed: dict[str, tuple[Any, ...]] = {}

    @functools.wraps(lex)
    def lex_once(self: Any) -> Any:
        expression = self.condition_expression
        if expression not in lexed:
            lexed[expression] = tuple(lex(self))
        return collections.deque(lexed[expression])

    comparisons.ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


def _processing_maps_once() -> None:
    """A validator pass builds its map of node classes to processing methods anew for every node it visits (twice);
    the map is the same for the pass's whole life (its classes are fixed, its methods bound to it), so it is built
    once per pass."""
    from moto.dynamodb.parsing import ast_nodes

    traverser: Any = ast_nodes.DepthFirstTraverser  # type: ignore[attr-defined]

    def processing_map(self: Any) -> dict[type, Any]:
        found = self.__dict__.get("_processing_map_once")
        if found is None:
            found = self._processing_map_once = self._processing_map()
        return found

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        found = self.__dict__.get("_nodes_to_be_processed_once")
        if found is None:
            found = self._nodes_to_be_processed_once = tuple(processing_map(self))
        return found

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing_map(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    traverser.nodes_to_be_processed = functools.wraps(traverser.nodes_to_be_processed)(nodes_to_be_processed)
    traverser.process = functools.wraps(traverser.process)(process)


def _remembered_routes() -> None:
    from moto.core import botocore_stubber

    botocore_stubber.BotocoreStubber.process_request = _process_request  # type: ignore[method-assign]


@functools.lru_cache(maxsize=1024)
def _services(clean_url: str) -> tuple[str, ...]:
    """The services whose URL patterns a request's URL matches, in moto's order."""
    import moto.backend_index as backend_index

    return tuple(service for service, pattern in backend_index.backend_url_patterns if pattern.match(clean_url))


_routes: dict[tuple[str, str], Any] = {}


def _route(service: str, clean_url: str) -> Any:
    """The handler of the first of the service's URLs the request's matches: a backend's URLs are its class's (its
    module's ``url_bases`` and ``url_paths``), the same for every account and region."""
    key = (service, clean_url)
    if key not in _routes:
        urls = _default_backend(service).urls
        _routes[key] = next((h for url, h in urls.items() if re.compile(url).match(clean_url)), None)
    return _routes[key]


def _default_backend(service: str) -> Any:
    import moto.backends as backends
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.base_backend import BackendDict

    backend_dict = backends.get_backend(service)  # type: ignore[call-overload]
    if not isinstance(backend_dict, BackendDict):
        return backend_dict["global"]
    regions = backend_dict[DEFAULT_ACCOUNT_ID]
    return regions["us-east-1"] if "us-east-1" in regions else regions["aws"]


def _process_request(self: Any, request: Any) -> Any:
    """moto's ``BotocoreStubber.process_request``, with which services and which URL of a backend match a request's
    URL remembered (it matched the URL against every service's patterns, and built every URL of the backend, for
    each request)."""
    from moto.core.config import passthrough_service, passthrough_url, service_whitelisted
    from moto.core.exceptions import HTTPException, ServiceNotWhitelisted
    from moto.core.request import normalize_request
    from moto.core.utils import get_equivalent_url_in_aws_domain
    from moto.moto_api import recorder

    parsed_url, _ = get_equivalent_url_in_aws_domain(request.url)
    clean_url = f"{parsed_url.scheme}://{parsed_url.netloc}{parsed_url.path}"
    if passthrough_url(clean_url):
        return None
    for service in _services(clean_url):
        if passthrough_service(service):
            return None
        if not service_whitelisted(service):
            raise ServiceNotWhitelisted(service)
        if (handler := _route(service, clean_url)) is not None:
            normalized_request = normalize_request(request)
            try:
                recorder._record_request(normalized_request)
                return handler(normalized_request, normalized_request.raw_url, normalized_request.headers)
            except HTTPException as error:
                return error.code, error.get_headers(), error.get_body()
    if re.compile(r"https?://.+\.amazonaws.com/.*").match(clean_url):
        return 404, {}, "Not yet implemented"
    return None


def _sanitized_user_agent_once() -> None:
    """botocore builds a request's User-Agent twice (for the request, then again once the request's features are
    known), from about fifteen components sanitized character by character. A sanitized component is remembered,
    and so is the header each ``UserAgentString`` (one per client) built for a set of features: everything else it
    reads was fixed when it was created."""
    import weakref

    from botocore import useragent
    from botocore.context import get_context

    useragent.sanitize_user_agent_string_component = functools.lru_cache(maxsize=1024)(
        useragent.sanitize_user_agent_string_component
    )
    to_string = useragent.UserAgentString.to_string
    built: weakref.WeakKeyDictionary[Any, dict[Any, str]] = weakref.WeakKeyDictionary()

    @functools.wraps(to_string)
    def to_string_once(self: Any) -> str:
        context = get_context()
        requested = frozenset(context.features) if context is not None else None
        features = (requested, frozenset(self._client_features or ()))
        strings = built.setdefault(self, {})
        if features not in strings:
            strings[features] = to_string(self)
        return strings[features]

    useragent.UserAgentString.to_string = to_string_once  # type: ignore[method-assign]


def _clock_without_imports() -> None:
    """moto's ``utcnow``, ``utcfromtimestamp``, ``unix_time`` and ``unix_time_millis``, the same arithmetic without
    an import statement and a new epoch per call, in ``moto.core.utils`` and wherever moto imported them by name
    (SQS reads the clock once per message of a queue to count its visible messages, for every message sent)."""
    import sys
    from datetime import UTC, datetime

    from moto.core import utils

    epoch = datetime(1970, 1, 1)

    def utcnow() -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)

    def utcfromtimestamp(value: int) -> datetime:
        return datetime.fromtimestamp(value, tz=UTC).replace(tzinfo=None)

    def unix_time(dt: datetime | None = None) -> float:
        delta = (dt or datetime.now(UTC).replace(tzinfo=None)) - epoch
        return (delta.days * 86400) + (delta.seconds + (delta.microseconds / 1e6))

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    faster: dict[str, Any] = {"utcnow": utcnow, "utcfromtimestamp": utcfromtimestamp, "unix_time": unix_time}
    faster["unix_time_millis"] = unix_time_millis
    originals = {getattr(utils, name): name for name in faster}
    for name, function in faster.items():
        functools.update_wrapper(function, getattr(utils, name))
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("moto.") and m is not None]:
        for attribute, value in list(vars(module).items()):
            if type(value) is types.FunctionType and originals.get(value) == attribute:
                setattr(module, attribute, faster[attribute])


def _queue_counts_at_one_instant() -> None:
    """An SQS queue's visible, delayed and in-flight messages counted with one read of the clock per count, not one
    per message (each send computes every attribute of its queue, these three among them)."""
    import moto.sqs.models as sqs

    def messages(self: Any) -> list[Any]:
        now = sqs.unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed(self: Any) -> int:
        now = sqs.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = sqs.unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    sqs.Queue.messages = property(messages)  # type: ignore[assignment]
    sqs.Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment]
    sqs.Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment]


def _compiled_jsonpath() -> None:
    import jsonpath_ng.ext

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def _cached_lookups() -> None:
    import moto.core.responses
    import moto.sqs.models
    from moto.core import utils

    method_names = functools.lru_cache(maxsize=None)(utils.method_names_from_class)
    moto.core.responses.method_names_from_class = method_names  # type: ignore[attr-defined]
    snake_case = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
    moto.sqs.models.camelcase_to_underscores = snake_case  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > utils.unix_time())

    moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


def _fast_random_strings() -> None:
    import string

    import moto.sqs.models
    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.moto_random import HEX_CHARS, MotoRandom

    hex_chars = [str(c) for c in HEX_CHARS]

    def get_random_hex(self: Any, length: int = 8) -> str:
        return "".join(self.choices(hex_chars, k=length))

    def get_random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    def generate_receipt_handle() -> str:
        return "".join(mock_random.choices(string.ascii_lowercase, k=185))

    MotoRandom.get_random_hex = get_random_hex  # type: ignore[method-assign]
    MotoRandom.get_random_string = get_random_string  # type: ignore[method-assign]
    moto.sqs.models.generate_receipt_handle = generate_receipt_handle  # type: ignore[attr-defined]


def _atomic_requests() -> None:
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    lock = threading.RLock()

    @functools.wraps(original)
    def dispatch(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = dispatch  # type: ignore[method-assign]

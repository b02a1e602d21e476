"""pt2e convert's graph surgery (see ``pt2e``'s module doc): constant inputs unlifted into
``get_attr`` nodes before ``convert_pt2e``, and every ``get_attr`` tensor lifted back into
a placeholder of a rebuilt, validated ExportedProgram after it.
"""

from __future__ import annotations

import contextlib
import copy
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram


@contextlib.contextmanager
def one_recompile(gm: torch.fx.GraphModule) -> Iterator[None]:
    """Within the block, ``gm.recompile()`` does nothing; it runs once at the end.

    For graph-only passes that recompile after each edit (the code is not run
    in between): on a stories-sized Llama that is half of convert's time.
    """
    setattr(gm, "recompile", lambda: None)  # noqa: B010 -- an instance attribute shadows it
    try:
        yield
    finally:
        delattr(gm, "recompile")
        gm.recompile()


def _const_value(ep: ExportedProgram, spec: Any) -> Any:
    return ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target]


def unlift_constants(ep: ExportedProgram, gm: torch.fx.GraphModule) -> dict[str, Any]:
    """Turn constant input placeholders of ``gm`` into ``get_attr`` nodes, in place.

    Returns ``{attribute name: original InputSpec}`` so lifting can restore them.
    """
    from torch.export.graph_signature import InputKind

    mutated = set(ep.graph_signature.buffers_to_mutate.values())
    specs = {s.arg.name: s for s in ep.graph_signature.input_specs}
    unlifted: dict[str, Any] = {}
    for node in list(gm.graph.find_nodes(op="placeholder")):
        spec = specs.get(node.name)
        if spec is None or spec.kind not in (
            InputKind.PARAMETER,
            InputKind.BUFFER,
            InputKind.CONSTANT_TENSOR,
        ):
            continue
        if spec.kind == InputKind.BUFFER and spec.target in mutated:
            continue
        attr = _free_attr(gm, f"_lifted_{node.name}")
        value = _const_value(ep, spec)
        gm.register_buffer(attr, value.data if hasattr(value, "data") else value)
        with gm.graph.inserting_before(node):
            get = gm.graph.get_attr(attr)
        get.meta.update(node.meta)
        node.replace_all_uses_with(get)
        gm.graph.erase_node(node)
        get.name = node.name  # the name the signature and dumps know
        unlifted[attr] = spec
    gm.recompile()
    return unlifted


def _free_attr(gm: torch.nn.Module, base: str) -> str:
    name, i = base, 0
    while hasattr(gm, name):
        i += 1
        name = f"{base}_{i}"
    return name


def rebuild(
    ep: ExportedProgram, gm: torch.fx.GraphModule, unlifted: Mapping[str, Any]
) -> ExportedProgram:
    """Lift every get_attr tensor of ``gm`` and wrap it in a validated ExportedProgram."""
    import torch
    from torch._guards import detect_fake_mode
    from torch.export import ExportedProgram
    from torch.export.graph_signature import (
        ExportGraphSignature,
        InputKind,
        InputSpec,
        TensorArgument,
    )

    graph = gm.graph
    fake_mode = detect_fake_mode(
        tuple(n.meta["val"] for n in graph.find_nodes(op="placeholder") if "val" in n.meta)
    )
    if fake_mode is None:
        raise ValueError("the exported graph's inputs carry no fake tensors (meta['val'])")
    old_specs = {s.arg.name: s for s in ep.graph_signature.input_specs}
    user_inputs = [
        n
        for n in graph.find_nodes(op="placeholder")
        if old_specs[n.name].kind == InputKind.USER_INPUT
    ]
    anchor = user_inputs[0] if user_inputs else None

    state_dict = {k: v for k, v in ep.state_dict.items()}
    constants = dict(ep.constants)
    new_specs: dict[str, InputSpec] = {}
    for node in list(graph.find_nodes(op="get_attr")):
        value = _get_attr(gm, node.target)
        if not isinstance(value, torch.Tensor):
            continue  # submodules (none expected after convert)
        if not node.users:
            graph.erase_node(node)
            continue
        with _insert_point(graph, anchor):
            ph = graph.placeholder(node.name)
        ph.meta.update(node.meta)
        if "val" not in ph.meta:
            ph.meta["val"] = fake_mode.from_tensor(value, static_shapes=True)
        node.replace_all_uses_with(ph)
        name = node.name
        graph.erase_node(node)
        ph.name = name
        if node.target in unlifted:
            spec = unlifted[node.target]
            new_specs[ph.name] = InputSpec(
                spec.kind, TensorArgument(ph.name), spec.target, spec.persistent
            )
        else:
            # A persistent buffer, as re-exporting the converted module would make it.
            fqn = _free_key(constants, state_dict, node.target)
            state_dict[fqn] = value
            new_specs[ph.name] = InputSpec(InputKind.BUFFER, TensorArgument(ph.name), fqn, True)

    # Constants that convert folded away (the float weights) leave the program.
    kept = {s.target for s in new_specs.values()}
    for spec in unlifted.values():
        if spec.target not in kept:
            state_dict.pop(spec.target, None)
            constants.pop(spec.target, None)

    specs = {**old_specs, **new_specs}
    _placeholders_first(graph, lambda ph: _KIND_ORDER.get(specs[ph.name].kind.name, 4))
    _fill_vals(graph, fake_mode)
    graph.eliminate_dead_code()
    gm.recompile()

    input_specs = [specs[ph.name] for ph in graph.find_nodes(op="placeholder")]
    output_specs = _output_specs(ep, graph)
    signature = ExportGraphSignature(input_specs, output_specs)
    return ExportedProgram(
        root=gm,
        graph=graph,
        graph_signature=signature,
        state_dict=state_dict,
        range_constraints=ep.range_constraints,
        module_call_graph=_module_call_graph(ep, output_specs),
        example_inputs=ep.example_inputs,
        constants=constants,
        verifiers=ep.verifiers,
    )


def _get_attr(gm: torch.nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _free_key(a: Mapping[str, Any], b: Mapping[str, Any], base: str) -> str:
    name, i = base, 0
    while name in a or name in b:
        i += 1
        name = f"{base}_{i}"
    return name


def _insert_point(graph: torch.fx.Graph, anchor: torch.fx.Node | None) -> Any:
    """Where lifted constants go: before the first user input, else after the placeholders."""
    if anchor is not None:
        return graph.inserting_before(anchor)
    placeholders = list(graph.find_nodes(op="placeholder"))
    return graph.inserting_after(placeholders[-1]) if placeholders else graph.inserting_before()


# torch.export's order of graph inputs: tokens, parameters, buffers, constants, user inputs.
_KIND_ORDER = {"TOKEN": 0, "PARAMETER": 1, "BUFFER": 2, "CONSTANT_TENSOR": 3, "CUSTOM_OBJ": 3}


def _placeholders_first(graph: torch.fx.Graph, rank: Callable[[torch.fx.Node], int]) -> None:
    """Put every placeholder before the other nodes, ordered by ``rank`` (stable)."""
    placeholders = sorted(graph.find_nodes(op="placeholder"), key=rank)
    first_other = next((n for n in graph.nodes if n.op != "placeholder"), None)
    if first_other is None:
        return
    for ph in placeholders:
        first_other.prepend(ph)


def _fill_vals(graph: torch.fx.Graph, fake_mode: Any) -> None:
    """Give ``meta['val']`` to call_function nodes that lack it, by running them on fakes."""
    import torch
    from torch.fx.node import map_arg

    for node in graph.nodes:
        if node.op != "call_function" or "val" in node.meta:
            continue

        def val(n: torch.fx.Node) -> Any:
            return n.meta["val"]

        args = map_arg(node.args, val)
        kwargs = map_arg(node.kwargs, val)
        if node.target is operator.getitem:
            node.meta["val"] = args[0][args[1]]
            continue
        with fake_mode, torch.no_grad():
            node.meta["val"] = node.target(*args, **kwargs)


def _output_specs(ep: ExportedProgram, graph: torch.fx.Graph) -> list[Any]:
    """The output specs of ``ep``, renamed to the nodes now feeding the output."""
    from torch.export.graph_signature import OutputSpec, TensorArgument

    outputs = graph.find_nodes(op="output")[0].args[0]
    specs = []
    for spec, node in zip(ep.graph_signature.output_specs, outputs, strict=True):
        if (
            isinstance(spec.arg, TensorArgument)
            and hasattr(node, "name")
            and spec.arg.name != node.name
        ):
            spec = OutputSpec(spec.kind, TensorArgument(node.name), spec.target)
        specs.append(spec)
    return specs


def _module_call_graph(ep: ExportedProgram, output_specs: list[Any]) -> list[Any]:
    """``ep``'s module call graph with the root signature's outputs renamed."""
    from torch.export.graph_signature import OutputKind, TensorArgument

    entries = list(ep.module_call_graph)
    if not entries or entries[0].signature is None:
        return entries
    root = copy.copy(entries[0])
    sig = copy.copy(root.signature)
    users = [s.arg for s in output_specs if s.kind == OutputKind.USER_OUTPUT]
    if len(users) == len(sig.outputs):
        sig.outputs = [
            u if isinstance(old, TensorArgument) else old
            for old, u in zip(sig.outputs, users, strict=True)
        ]
    root.signature = sig
    return [root, *entries[1:]]

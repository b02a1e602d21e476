"""The shape most source passes share: swap some of the model's submodules, on a copy.

A module-swap pass finds the places it rewrites (``sites``). With none, the rewrite is
either there already (``done``: the pass reports "unchanged") or the model is not one it
rewrites (``not_found``: a ModelError naming what is missing). It refuses a site the swap
would get wrong before touching anything (``refuse``), then copies the program's modules,
sharing every tensor (``copy_modules``: the input program stays as it was), and rewrites
the copy (``swap``, by default the upstream ``transform`` on each method's module).

The classes and the upstream transform are data, written ``"package.module:Name"`` and
imported when the pass runs (nothing under ``passes/`` imports torch at module level); a
subclass overrides a method only where it differs from that default.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pteflow.ir import Program
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassResult
from .llama import copy_modules, count, not_a_llama, submodules

if TYPE_CHECKING:
    import torch

#: Where ExecuTorch's Llama and its source transformations live (for the class paths).
LLAMA = "executorch.examples.models.llama"
LLAMA_ST = f"{LLAMA}.source_transformation"

#: One place a pass rewrites: (method, qualified name, the module or buffer there).
Site = tuple[str, str, Any]


def resolve(path: str) -> Any:
    """The object ``"package.module:Name"`` names (imported now)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def classes(paths: tuple[str, ...]) -> tuple[type, ...]:
    return tuple(resolve(p) for p in paths)


@attrs.frozen
class ModuleSwapPass(Pass):
    """Base of the passes that swap submodules (not itself a pass: it has no ``info``)."""

    #: the classes whose instances are the sites (default ``sites``)
    replaces: ClassVar[tuple[str, ...]] = ()
    #: the classes a finished swap leaves: with no site left and one of these, it is done
    leaves: ClassVar[tuple[str, ...]] = ()
    #: the upstream function the default ``swap`` calls on each method's copied module
    transform: ClassVar[str] = ""
    #: what a model with neither sites nor the result lacks (the error names it)
    missing: ClassVar[str] = ""

    # ------------------------------------------------------------------ to override

    def sites(self, program: Program) -> list[Site]:
        """The places to rewrite: every submodule of one of the ``replaces`` classes."""
        wanted = classes(self.replaces)
        return [site for site in submodules(program) if isinstance(site[2], wanted)]

    def done(self, program: Program) -> bool:
        """With no site: the rewrite is already there (some submodule of ``leaves``)."""
        return bool(count(program, classes(self.leaves)))

    def not_found(self) -> ModelError:
        """With no site and not done: the model is not one this pass rewrites."""
        return not_a_llama(self.name, self.missing)

    def refuse(self, program: Program, sites: list[Site]) -> None:
        """Raise ModelError for a site the swap would get wrong (default: none)."""

    def swap(self, modules: dict[str, torch.nn.Module], sites: list[Site]) -> None:
        """Rewrite the copied ``modules`` in place (default: ``transform`` on each)."""
        transform = resolve(self.transform)
        for module in modules.values():
            transform(module)

    def metadata(self, program: Program) -> Mapping[str, Any]:
        """The swapped program's metadata (default: the input's)."""
        return program.metadata

    # ------------------------------------------------------------------ the shape

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        sites = self.sites(program)
        if not sites:
            if self.done(program):
                return PassResult(program, False)
            raise self.not_found()
        self.refuse(program, sites)
        modules = copy_modules(program)
        self.swap(modules, sites)
        ctx.log(f"rewrote {len(sites)} site(s)")
        return PassResult(program.evolve(artifact=modules, metadata=self.metadata(program)), True)

# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""Turn the scheduler plugins on or off in a nova.conf, in place.

Three options of nova's ``[filter_scheduler]`` group matter, and they are of
two kinds that oslo.config reads differently:

``available_filters`` (MultiStrOpt)
    Every line of the key adds one value. Ours is one more line,
    ``gpu_passthrough_filter.scheduler.all_filters``. A file without the key
    gets nova's default (``nova.scheduler.filters.all_filters``) written out
    first: one explicit line would otherwise *replace* the default.
``enabled_filters`` and ``weight_classes`` (ListOpt)
    One comma-separated value; with the key repeated, oslo.config keeps only
    the last line. So the last line is edited, never a second one added. A
    file without the key starts from nova's default list.

Everything else in the file (comments, other sections, other keys, their
order) is left byte for byte. :class:`IniDocument` parses lines with the
same rules as ``oslo_config.iniparser`` (continuation lines, ``#``/``;``
comments, the first of ``=``/``:`` splits, section names compared in lower
case) and remembers where each entry sits.

The functions here are pure (text in, text out); :func:`nova_defaults`
reads nova's own option definitions, and the callers write the result
with :func:`gpu_passthrough_filter.files.replace_atomically`.
"""

import collections

from oslo_config import types

from gpu_passthrough_filter import recommended

SECTION = 'filter_scheduler'

AVAILABLE_FILTERS = 'available_filters'
ENABLED_FILTERS = 'enabled_filters'
WEIGHT_CLASSES = 'weight_classes'

#: The callable that nova's HostFilterHandler loads our filter classes from.
OUR_FILTERS = 'gpu_passthrough_filter.scheduler.all_filters'
#: The class name that ``enabled_filters`` lists (nova matches by name).
OUR_FILTER_NAME = 'GPUPassthroughFilter'
#: The callable that nova's HostWeightHandler loads our weigher classes from.
OUR_WEIGHERS = 'gpu_passthrough_filter.scheduler.all_weighers'

#: nova's filters a GPU passthrough cloud runs; GPUPassthroughFilter goes
#: right before the first.
NOVA_GPU_FILTERS = ('PciPassthroughFilter', 'NUMATopologyFilter')
FAST_FILTERS = recommended.FAST_NOVA_FILTERS

Entry = collections.namedtuple('Entry', 'section key start end values')
Entry.__doc__ = """One ``key = value`` assignment of an INI file.

``start``/``end`` are line indexes (end exclusive, continuation lines
included); ``values`` is the list oslo.config would record for this line.
"""

EditResult = collections.namedtuple('EditResult', 'text changes')
EditResult.__doc__ = """The edited text and one human sentence per change.

No changes means the text is returned unmodified.
"""


class IniParseError(ValueError):
    """The file is not something oslo.config could parse either."""

    def __init__(self, lineno, message, line):
        super().__init__('line %d: %s: %r' % (lineno, message, line))


def _normalize_section(name):
    # NOTE: oslo.config compares group names in lower case, except DEFAULT.
    return name if name == 'DEFAULT' else name.lower()


def _split_assignment(line, lineno):
    """Split ``key = value`` the way oslo_config.iniparser does."""
    colon = line.find(':')
    equal = line.find('=')
    if colon < 0 and equal < 0:
        raise IniParseError(lineno, "no ':' or '=' in assignment", line)
    cut = equal if colon < 0 or 0 <= equal < colon else colon
    key, value = line[:cut].strip(), line[cut + 1:].strip()
    if not key:
        raise IniParseError(lineno, 'empty key', line)
    if value and value[0] == value[-1] and value.startswith(('"', "'")):
        value = value[1:-1]
    return key, value


class IniDocument(object):
    """The lines of an INI file and where its entries and sections are.

    :param text: the whole file.
    :raises IniParseError: on a line oslo.config would refuse too.
    """

    def __init__(self, text):
        self.lines = text.splitlines(keepends=True)
        #: Every assignment, in file order.
        self.entries = []
        #: (normalized section name, index of the header line), file order.
        self.headers = []
        self._parse()

    def _parse(self):
        section = None
        pending = None  # [key, start, value lines] of the open assignment
        for index, raw in enumerate(self.lines):
            line = raw.rstrip()
            if line.startswith((' ', '\t')) and line.strip() and pending:
                pending[2].append(line.lstrip())
                continue
            self._close(section, pending, index)
            pending = None
            if not line:
                continue
            if line.startswith((' ', '\t')):
                raise IniParseError(index + 1, 'unexpected continuation',
                                    line)
            if line.startswith('['):
                section = self._header(line, index)
            elif not line.startswith(('#', ';')):
                if section is None:
                    raise IniParseError(index + 1, 'no section header', line)
                key, value = _split_assignment(line, index + 1)
                pending = [key, index, [value]]
        self._close(section, pending, len(self.lines))

    def _header(self, line, index):
        if not line.endswith(']') or len(line) <= 2:
            raise IniParseError(index + 1, 'invalid section header', line)
        section = _normalize_section(line[1:-1])
        self.headers.append((section, index))
        return section

    def _close(self, section, pending, end):
        if pending:
            key, start, value_lines = pending
            self.entries.append(Entry(section, key, start, end,
                                      '\n'.join(value_lines)))

    def find(self, section, key):
        """All entries of ``key`` in ``section``, in file order."""
        section = _normalize_section(section)
        return [e for e in self.entries
                if e.section == section and e.key == key]

    def insertion_point(self, section):
        """Line index where a new key of ``section`` goes, or None.

        Right after the last entry of the last header of that section (or
        after the header itself if the section is empty), so new lines sit
        with their siblings rather than after trailing comments that may
        introduce the next section.
        """
        section = _normalize_section(section)
        starts = [index for name, index in self.headers if name == section]
        if not starts:
            return None
        header = starts[-1]
        in_block = [e for e in self.entries
                    if e.section == section and e.start > header
                    and not any(header < i < e.start
                                for _, i in self.headers)]
        return in_block[-1].end if in_block else header + 1

    def text(self):
        return ''.join(self.lines)


def _line(key, value):
    return '%s = %s\n' % (key, value)


def _format_list(items):
    # NOTE: oslo's List type splits on commas outside quotes; quote an item
    # only when it needs it so the usual case stays readable.
    return ','.join('"%s"' % item if ',' in item else item for item in items)


def _parse_list(value):
    return list(types.List()(value))


def _ensure_line_break(lines):
    if lines and not lines[-1].endswith('\n'):
        lines[-1] += '\n'


def _insert(doc, section, new_lines):
    """Return lines with ``new_lines`` added to ``section``, made if absent."""
    lines = list(doc.lines)
    at = doc.insertion_point(section)
    if at is None:
        _ensure_line_break(lines)
        if lines and lines[-1].strip():
            lines.append('\n')
        lines.append('[%s]\n' % section)
        lines.extend(new_lines)
        return lines
    if at == len(lines):
        _ensure_line_break(lines)
    lines[at:at] = new_lines
    return lines


def _set_multi_value(text, key, value, present, default):
    """Add or remove one value of a MultiStrOpt ``key``.

    :param text: the INI text.
    :param key: the option name in ``[filter_scheduler]``.
    :param value: the value we own.
    :param present: whether ``value`` must end up listed.
    :param default: nova's default values, written out first when the key
        is absent (one explicit line replaces the default).
    :returns: (new text, list of change sentences)
    """
    doc = IniDocument(text)
    entries = doc.find(SECTION, key)
    ours = [e for e in entries if e.values == value]
    if present and ours:
        return text, []
    if present:
        new = [_line(key, value)]
        changes = ['[%s] %s: added %s' % (SECTION, key, value)]
        if not entries:
            new = [_line(key, d) for d in default] + new
            changes.insert(0, '[%s] %s: wrote out nova\'s default %s' % (
                SECTION, key, ', '.join(default)))
            return ''.join(_insert(doc, SECTION, new)), changes
        lines = list(doc.lines)
        at = entries[-1].end
        if at == len(lines):
            _ensure_line_break(lines)
        lines[at:at] = new
        return ''.join(lines), changes
    if not ours:
        return text, []
    lines = list(doc.lines)
    for entry in reversed(ours):
        del lines[entry.start:entry.end]
    return ''.join(lines), ['[%s] %s: removed %s' % (SECTION, key, value)]


def _edit_list(text, key, default, transform):
    """Rewrite a ListOpt ``key`` of ``[filter_scheduler]``, last line only.

    :param text: the INI text.
    :param key: the option name.
    :param default: nova's default list, the starting point when the key is
        absent.
    :param transform: ``transform(current) -> (wanted, changes)``.
    :returns: (new text, list of change sentences)
    """
    doc = IniDocument(text)
    entries = doc.find(SECTION, key)
    current = _parse_list(entries[-1].values) if entries else list(default)
    wanted, changes = transform(current)
    if wanted == current:
        return text, []
    if not entries:
        changes = [c + ' (nova\'s default list written out)' for c in changes]
    new_line = _line(key, _format_list(wanted))
    if entries:
        lines = list(doc.lines)
        # NOTE: only the last line counts for oslo.config; replace it (and
        # its continuation lines) with one line, never add another.
        lines[entries[-1].start:entries[-1].end] = [new_line]
    else:
        lines = _insert(doc, SECTION, [new_line])
    return ''.join(lines), ['[%s] %s: %s' % (SECTION, key, change)
                            for change in changes]


def _set_list_item(text, key, item, present, default):
    """Add (at the end) or remove one item of a ListOpt ``key``."""
    def transform(current):
        if (item in current) == present:
            return current, []
        if present:
            return current + [item], ['added %s' % item]
        return [i for i in current if i != item], ['removed %s' % item]
    return _edit_list(text, key, default, transform)


def _set_our_filter(text, key, item, present, default):
    """List (or drop) GPUPassthroughFilter, before PciPassthroughFilter.

    Before it, so that with PCI in Placement nova's PCI and NUMA filters
    check only the candidates GPUPassthroughFilter kept (each one costs
    them a deep copy of the host's PCI stats); at the end when nova's PCI
    filter is not listed.
    """
    def transform(current):
        if not present:
            if item not in current:
                return current, []
            return [i for i in current if i != item], ['removed %s' % item]
        first = next((name for name in (NOVA_GPU_FILTERS[0],
                                        FAST_FILTERS[NOVA_GPU_FILTERS[0]])
                      if name in current), NOVA_GPU_FILTERS[0])
        if item in current and (first not in current or
                                current.index(item) < current.index(first)):
            return current, []
        wanted = [i for i in current if i != item]
        wanted.insert(wanted.index(first) if first in wanted
                      else len(wanted), item)
        if item not in current:
            where = (' before %s' % first) if first in wanted else ''
            return wanted, ['added %s%s' % (item, where)]
        return wanted, ['moved %s before %s' % (item, first)]
    return _edit_list(text, key, default, transform)


def missing_gpu_filters(text, defaults):
    """nova's GPU filters the edited file does not enable, as warnings.

    :param text: the content of a nova.conf.
    :param defaults: as for :func:`configure`.
    :returns: a list of sentences (empty when both are enabled).
    """
    entries = IniDocument(text).find(SECTION, ENABLED_FILTERS)
    enabled = (_parse_list(entries[-1].values) if entries
               else defaults[ENABLED_FILTERS])
    return ['[%s] %s does not list %s: nova then does not check the GPUs '
            'its own way; add it' % (SECTION, ENABLED_FILTERS, name)
            for name in NOVA_GPU_FILTERS
            if name not in enabled and FAST_FILTERS[name] not in enabled]


def _add_nova_gpu_filters(text, key, item, present, default):
    """List nova's PciPassthroughFilter and NUMATopologyFilter if missing."""
    def transform(current):
        missing = [name for name in NOVA_GPU_FILTERS if
                   name not in current and FAST_FILTERS[name] not in current]
        if not present or not missing:
            return current, []
        return current + missing, ['added %s' % name for name in missing]
    return _edit_list(text, key, default, transform)


def _set_fast_filters(text, key, item, fast, default):
    """Name nova's GPU filters by their fast forms, or by nova's names.

    ``fast`` True: ``PciPassthroughFilter`` becomes
    ``FastPciPassthroughFilter`` where it stands (likewise
    ``NUMATopologyFilter``); False: back to nova's names (the fast forms
    load only with this project's filters available); None: no change.
    """
    renames = (FAST_FILTERS if fast else
               {new: old for old, new in FAST_FILTERS.items()})

    def transform(current):
        if fast is None:
            return current, []
        wanted = [renames.get(name, name) for name in current]
        return wanted, ['%s is now %s' % (old, new) for old, new in
                        zip(current, wanted) if old != new]
    return _edit_list(text, key, default, transform)


def configure(text, defaults, enable_filter=True, enable_weigher=True,
              nova_gpu_filters=False, fast_nova_filters=False):
    """Return ``text`` with the plugins turned on or off as asked.

    Idempotent: ``configure(configure(t, ...).text, ...)`` changes nothing.

    :param text: the content of a nova.conf.
    :param defaults: nova's defaults, a mapping of ``available_filters``,
        ``enabled_filters`` and ``weight_classes`` to lists of strings (see
        :func:`nova_defaults`).
    :param enable_filter: list ``GPUPassthroughFilter`` (and make it
        loadable) when true, remove it when false.
    :param enable_weigher: list our weighers in ``weight_classes`` when
        true, remove them when false.
    :param nova_gpu_filters: also list nova's ``PciPassthroughFilter`` and
        ``NUMATopologyFilter`` when missing (never removed).
    :param fast_nova_filters: name those two by their fast forms
        (``FastPciPassthroughFilter``, ``FastNUMATopologyFilter``: same
        verdicts, less work per request); disabling the filter always names
        them back as nova's.
    :returns: an :class:`EditResult`.
    :raises IniParseError: when ``text`` is not a valid oslo.config file.
    """
    changes = []
    steps = [
        (_set_multi_value, AVAILABLE_FILTERS, OUR_FILTERS, enable_filter),
        (_add_nova_gpu_filters, ENABLED_FILTERS, None,
         enable_filter and nova_gpu_filters),
        (_set_fast_filters, ENABLED_FILTERS, None,
         (True if fast_nova_filters else None) if enable_filter else False),
        (_set_our_filter, ENABLED_FILTERS, OUR_FILTER_NAME, enable_filter),
        (_set_list_item, WEIGHT_CLASSES, OUR_WEIGHERS, enable_weigher),
    ]
    for edit, key, value, present in steps:
        text, done = edit(text, key, value, present, defaults[key])
        changes.extend(done)
    return EditResult(text, changes)


def _set_value(text, section, key, value):
    """Set one single-valued option; returns (new text, change sentences).

    Only the last entry counts for oslo.config: it is replaced (and any
    earlier duplicates left alone), or a line is added to the section.
    """
    doc = IniDocument(text)
    entries = doc.find(section, key)
    if entries and entries[-1].values == value:
        return text, []
    new_line = _line(key, value)
    if entries:
        lines = list(doc.lines)
        lines[entries[-1].start:entries[-1].end] = [new_line]
        change = 'was %s, now %s' % (entries[-1].values, value)
    else:
        lines = _insert(doc, section, [new_line])
        change = 'set to %s' % value
    return ''.join(lines), ['[%s] %s: %s' % (section, key, change)]


def configure_values(text, options):
    """Return ``text`` with single-valued options set.

    Idempotent, like :func:`configure`.

    :param text: the content of an oslo.config file (e.g. placement.conf).
    :param options: ``[(section, key, value)]``; booleans are written as
        ``True``/``False``.
    :returns: an :class:`EditResult`.
    :raises IniParseError: when ``text`` is not a valid oslo.config file.
    """
    changes = []
    for section, key, value in options:
        text, done = _set_value(text, section, key, str(value))
        changes.extend(done)
    return EditResult(text, changes)


def nova_defaults():
    """nova's defaults of the three options, from nova's own definitions.

    :returns: a mapping of option name to a list of strings.
    :raises ImportError: when nova is not installed here.
    """
    # NOTE: imported here: nova is not a requirement of the agent's hosts.
    from nova.conf import scheduler

    wanted = (AVAILABLE_FILTERS, ENABLED_FILTERS, WEIGHT_CLASSES)
    return {opt.name: list(opt.default)
            for opt in scheduler.filter_scheduler_opts
            if opt.name in wanted}

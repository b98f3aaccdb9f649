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
"""nova.conf editing, checked by reading the result with nova's own options.

Every expectation about what nova will use is asserted on the values that a
fresh ``ConfigOpts`` with ``nova.conf.scheduler``'s options parses from the
edited file, the way nova-scheduler reads it; the text itself is only
checked for what the parser cannot show (comments, line counts).
"""

import argparse
import io
import os
import stat
import textwrap

import fixtures
import hypothesis
from hypothesis import strategies
from nova.conf import scheduler as nova_scheduler_conf
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from oslo_config import cfg
from oslotest import base

from gpu_passthrough_filter.cmd import nova_conf
from gpu_passthrough_filter.cmd import novaconf

NOVA_FILTERS = 'nova.scheduler.filters.all_filters'
NOVA_WEIGHERS = 'nova.scheduler.weights.all_weighers'
NOVA_ENABLED_DEFAULT = [
    'ComputeFilter',
    'ComputeCapabilitiesFilter',
    'ImagePropertiesFilter',
    'ServerGroupAntiAffinityFilter',
    'ServerGroupAffinityFilter',
]
OURS_FILTERS = 'gpu_passthrough_filter.scheduler.all_filters'
OURS_FILTER = 'GPUPassthroughFilter'
OURS_WEIGHERS = 'gpu_passthrough_filter.scheduler.all_weighers'


def dedent(text):
    return textwrap.dedent(text).lstrip('\n')


def load_filter_scheduler(path):
    """[filter_scheduler] as nova-scheduler would read it from ``path``."""
    conf = cfg.ConfigOpts()
    nova_scheduler_conf.register_opts(conf)
    conf(args=[], default_config_files=[path], default_config_dirs=[])
    return conf.filter_scheduler


class NovaConfTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.defaults = novaconf.nova_defaults()

    def write(self, text, name='nova.conf'):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def read(self, path):
        with open(path) as f:
            return f.read()

    def configure(self, text, **kwargs):
        return novaconf.configure(text, self.defaults, **kwargs)

    def configured_and_loaded(self, text, **kwargs):
        result = self.configure(text, **kwargs)
        return result, load_filter_scheduler(self.write(result.text))


class TestNovaDefaults(NovaConfTestCase):

    def test_defaults_come_from_nova(self):
        self.assertEqual(
            {'available_filters': [NOVA_FILTERS],
             'enabled_filters': NOVA_ENABLED_DEFAULT,
             'weight_classes': [NOVA_WEIGHERS]},
            self.defaults)


class TestEnable(NovaConfTestCase):

    def test_file_without_the_section_keeps_nova_defaults(self):
        original = dedent("""
            [DEFAULT]
            debug = True
            """)
        result, fs = self.configured_and_loaded(original)
        self.assertEqual([NOVA_FILTERS, OURS_FILTERS], fs.available_filters)
        self.assertEqual(NOVA_ENABLED_DEFAULT + [OURS_FILTER],
                         fs.enabled_filters)
        self.assertEqual([NOVA_WEIGHERS, OURS_WEIGHERS], fs.weight_classes)
        self.assertTrue(result.text.startswith(original))

    def test_empty_file(self):
        _, fs = self.configured_and_loaded('')
        self.assertEqual([NOVA_FILTERS, OURS_FILTERS], fs.available_filters)
        self.assertEqual(NOVA_ENABLED_DEFAULT + [OURS_FILTER],
                         fs.enabled_filters)

    def test_custom_lists_are_preserved_and_appended_to(self):
        # NOTE: devstack's own list, with two filters not in nova's default.
        original = dedent("""
            [filter_scheduler]
            enabled_filters = ComputeFilter,ImagePropertiesFilter,SameHostFilter,DifferentHostFilter
            weight_classes = nova.scheduler.weighers.ram.RAMWeigher
            workers = 2
            """)  # noqa: E501
        _, fs = self.configured_and_loaded(original)
        self.assertEqual(['ComputeFilter', 'ImagePropertiesFilter',
                          'SameHostFilter', 'DifferentHostFilter',
                          OURS_FILTER], fs.enabled_filters)
        self.assertEqual(['nova.scheduler.weighers.ram.RAMWeigher',
                          OURS_WEIGHERS], fs.weight_classes)

    def test_custom_available_filters_are_not_replaced_by_nova_default(self):
        # An operator who narrowed available_filters on purpose keeps it:
        # nova's all_filters is written only when the key is absent.
        original = dedent("""
            [filter_scheduler]
            available_filters = nova.scheduler.filters.compute_filter.ComputeFilter
            enabled_filters = ComputeFilter
            """)  # noqa: E501
        _, fs = self.configured_and_loaded(original)
        self.assertEqual(
            ['nova.scheduler.filters.compute_filter.ComputeFilter',
             OURS_FILTERS], fs.available_filters)
        self.assertEqual(['ComputeFilter', OURS_FILTER], fs.enabled_filters)

    def test_twice_is_once(self):
        original = dedent("""
            [DEFAULT]
            # keep me
            [filter_scheduler]
            enabled_filters = ComputeFilter
            """)
        once = self.configure(original)
        twice = self.configure(once.text)
        self.assertNotEqual([], once.changes)
        self.assertEqual([], twice.changes)
        self.assertEqual(once.text, twice.text)

    def test_our_names_appear_once(self):
        text = ''
        for _ in range(3):
            text = self.configure(text).text
        self.assertEqual(1, text.count(OURS_FILTERS))
        self.assertEqual(1, text.count(OURS_FILTER + '\n'))
        self.assertEqual(1, text.count(OURS_WEIGHERS))
        self.assertEqual(1, text.count('enabled_filters'))
        self.assertEqual(1, text.count('weight_classes'))

    def test_comments_and_other_sections_are_kept_byte_for_byte(self):
        original = dedent("""
            # Top comment
            [DEFAULT]
            ; semicolon comment
            transport_url = rabbit://u:p@h:5672/

            [filter_scheduler]
            # Why we run these filters: see ticket 42.
            enabled_filters = ComputeFilter
            host_subset_size = 2
            # trailing comment of the section

            [pci]
            alias = {"name": "a100", "vendor_id": "10de", "product_id": "20b5"}
            alias = {"name": "h100", "vendor_id": "10de", "product_id": "2330"}
            """)
        result = self.configure(original)
        changed = [line for line in result.text.splitlines()
                   if line not in original.splitlines()]
        removed = [line for line in original.splitlines()
                   if line not in result.text.splitlines()]
        self.assertEqual(['enabled_filters = ComputeFilter'], removed)
        self.assertEqual(
            ['enabled_filters = ComputeFilter,' + OURS_FILTER,
             'available_filters = ' + NOVA_FILTERS,
             'available_filters = ' + OURS_FILTERS,
             'weight_classes = %s,%s' % (NOVA_WEIGHERS, OURS_WEIGHERS)],
            changed)
        # Order kept: the original lines are a subsequence of the result.
        remaining = iter(result.text.splitlines())
        for line in original.splitlines():
            if line not in removed:
                self.assertIn(line, remaining)
        # New keys sit with their section, before the trailing comment.
        lines = result.text.splitlines()
        self.assertLess(lines.index('available_filters = ' + OURS_FILTERS),
                        lines.index('# trailing comment of the section'))
        # The [pci] multi-value option is untouched.
        conf = cfg.ConfigOpts()
        conf.register_opt(cfg.MultiStrOpt('alias'), group='pci')
        conf(args=[], default_config_files=[self.write(result.text)],
             default_config_dirs=[])
        self.assertEqual(2, len(conf.pci.alias))

    def test_duplicate_list_keys_edit_only_the_last_line(self):
        # oslo.config keeps the last line of a ListOpt: ours in a dead line
        # does not count, and the dead line is left as it was.
        original = dedent("""
            [filter_scheduler]
            enabled_filters = ComputeFilter,GPUPassthroughFilter
            [DEFAULT]
            debug = True
            [filter_scheduler]
            enabled_filters = RamFilterGone,ComputeFilter
            """)
        result, fs = self.configured_and_loaded(original)
        self.assertEqual(['RamFilterGone', 'ComputeFilter', OURS_FILTER],
                         fs.enabled_filters)
        self.assertEqual(2, result.text.count('enabled_filters'))
        self.assertIn('enabled_filters = ComputeFilter,GPUPassthroughFilter\n'
                      '[DEFAULT]', result.text)

    def test_duplicate_multi_keys_are_all_kept(self):
        original = dedent("""
            [filter_scheduler]
            available_filters = nova.scheduler.filters.all_filters
            available_filters = my_company.filters.all_filters
            """)
        _, fs = self.configured_and_loaded(original)
        self.assertEqual([NOVA_FILTERS, 'my_company.filters.all_filters',
                          OURS_FILTERS], fs.available_filters)

    def test_continuation_lines_become_one_line(self):
        original = dedent("""
            [filter_scheduler]
            enabled_filters = ComputeFilter,
                ImagePropertiesFilter
            max_io_ops_per_host = 4
            """)
        before = load_filter_scheduler(self.write(original, 'before.conf'))
        self.assertEqual(['ComputeFilter', 'ImagePropertiesFilter'],
                         before.enabled_filters)
        result, fs = self.configured_and_loaded(original)
        self.assertEqual(['ComputeFilter', 'ImagePropertiesFilter',
                          OURS_FILTER], fs.enabled_filters)
        self.assertEqual(4, fs.max_io_ops_per_host)
        self.assertNotIn('    ImagePropertiesFilter', result.text)

    def test_quoted_value_and_colon_separator(self):
        original = dedent("""
            [filter_scheduler]
            enabled_filters: "ComputeFilter,ImagePropertiesFilter"
            """)
        _, fs = self.configured_and_loaded(original)
        self.assertEqual(['ComputeFilter', 'ImagePropertiesFilter',
                          OURS_FILTER], fs.enabled_filters)

    def test_section_name_case_as_oslo_config(self):
        original = dedent("""
            [FILTER_SCHEDULER]
            enabled_filters = ComputeFilter
            """)
        result, fs = self.configured_and_loaded(original)
        self.assertEqual(['ComputeFilter', OURS_FILTER], fs.enabled_filters)
        self.assertNotIn('[filter_scheduler]', result.text)

    def test_already_listed_filter_is_not_added_again(self):
        original = dedent("""
            [filter_scheduler]
            enabled_filters = GPUPassthroughFilter, ComputeFilter
            """)
        _, fs = self.configured_and_loaded(original)
        self.assertEqual([OURS_FILTER, 'ComputeFilter'], fs.enabled_filters)

    def test_no_trailing_newline(self):
        _, fs = self.configured_and_loaded(
            '[filter_scheduler]\nenabled_filters = ComputeFilter')
        self.assertEqual(['ComputeFilter', OURS_FILTER], fs.enabled_filters)
        self.assertEqual([NOVA_FILTERS, OURS_FILTERS], fs.available_filters)

    def test_without_weigher(self):
        _, fs = self.configured_and_loaded(
            '[filter_scheduler]\n', enable_weigher=False)
        self.assertEqual([NOVA_WEIGHERS], fs.weight_classes)
        self.assertIn(OURS_FILTER, fs.enabled_filters)

    def test_no_weigher_removes_a_listed_weigher(self):
        enabled = self.configure('').text
        result, fs = self.configured_and_loaded(enabled, enable_weigher=False)
        self.assertEqual([NOVA_WEIGHERS], fs.weight_classes)
        self.assertNotIn(OURS_WEIGHERS, result.text)

    def test_invalid_file_is_refused(self):
        self.assertRaises(novaconf.IniParseError, self.configure,
                          'debug = True\n')
        self.assertRaises(novaconf.IniParseError, self.configure,
                          '[DEFAULT]\nnot an assignment\n')
        self.assertRaises(novaconf.IniParseError, self.configure,
                          '[DEFAULT\n')

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(
        existing=strategies.lists(
            strategies.sampled_from(NOVA_ENABLED_DEFAULT + [
                'PciPassthroughFilter', 'NUMATopologyFilter', OURS_FILTER]),
            unique=True, max_size=6),
        spaces=strategies.booleans())
    def test_any_existing_list_gains_ours_exactly_once(
            self, existing, spaces):
        sep = ', ' if spaces else ','
        original = '[filter_scheduler]\nenabled_filters = %s\n' % (
            sep.join(existing))
        result, fs = self.configured_and_loaded(original)
        # Ours ends up listed once, before PciPassthroughFilter when that
        # is listed, everything else in its order.
        others = [name for name in existing if name != OURS_FILTER]
        self.assertEqual(others, [name for name in fs.enabled_filters
                                  if name != OURS_FILTER])
        self.assertEqual(1, fs.enabled_filters.count(OURS_FILTER))
        if 'PciPassthroughFilter' in existing:
            self.assertLess(fs.enabled_filters.index(OURS_FILTER),
                            fs.enabled_filters.index('PciPassthroughFilter'))
        elif OURS_FILTER not in existing:
            self.assertEqual(OURS_FILTER, fs.enabled_filters[-1])
        self.assertEqual([], self.configure(result.text).changes)


class TestNovaLoadsTheResult(NovaConfTestCase):
    """nova's own loaders find every class the edited file names.

    Our own entries are left out of the lookup: the scheduler plugins
    (``gpu_passthrough_filter.scheduler``) are not part of this change.
    """

    def test_nova_filters_named_in_enabled_filters_are_available(self):
        # nova-scheduler raises SchedulerHostFilterNotFound at start for an
        # enabled filter that available_filters cannot load; writing one
        # explicit available_filters line without nova's all_filters would
        # do exactly that.
        for original in ('', '[filter_scheduler]\n'
                             'enabled_filters = ComputeFilter,SameHostFilter,'
                             'PciPassthroughFilter\n'):
            _, fs = self.configured_and_loaded(original)
            names = [n for n in fs.available_filters if n != OURS_FILTERS]
            loaded = {cls.__name__ for cls in
                      nova_filters.HostFilterHandler().get_matching_classes(
                          names)}
            self.assertEqual(
                set(), set(fs.enabled_filters) - {OURS_FILTER} - loaded)

    def test_nova_weighers_still_load(self):
        _, fs = self.configured_and_loaded('')
        names = [n for n in fs.weight_classes if n != OURS_WEIGHERS]
        loaded = nova_weights.HostWeightHandler().get_matching_classes(names)
        self.assertIn('RAMWeigher', {cls.__name__ for cls in loaded})


class TestDisable(NovaConfTestCase):

    def assert_same_for_nova(self, original, edited):
        before = load_filter_scheduler(self.write(original, 'before.conf'))
        after = load_filter_scheduler(self.write(edited, 'after.conf'))
        for key in ('available_filters', 'enabled_filters',
                    'weight_classes'):
            self.assertEqual(before[key], after[key], key)

    def test_disable_undoes_enable_for_nova(self):
        originals = [
            '',
            '[filter_scheduler]\nenabled_filters = ComputeFilter\n',
            dedent("""
                [filter_scheduler]
                available_filters = nova.scheduler.filters.all_filters
                available_filters = my.filters.all
                weight_classes = nova.scheduler.weighers.ram.RAMWeigher
                """),
        ]
        for original in originals:
            enabled = self.configure(original).text
            disabled = self.configure(enabled, enable_filter=False,
                                      enable_weigher=False)
            self.assert_same_for_nova(original, disabled.text)
            for name in (OURS_FILTERS, OURS_FILTER, OURS_WEIGHERS):
                self.assertNotIn(name, disabled.text)

    def test_disable_twice_is_once(self):
        enabled = self.configure('').text
        once = self.configure(enabled, enable_filter=False,
                              enable_weigher=False)
        twice = self.configure(once.text, enable_filter=False,
                               enable_weigher=False)
        self.assertEqual(3, len(once.changes))
        self.assertEqual([], twice.changes)
        self.assertEqual(once.text, twice.text)

    def test_disable_on_a_file_without_us_changes_nothing(self):
        original = '[DEFAULT]\n# nothing of ours\n'
        result = self.configure(original, enable_filter=False,
                                enable_weigher=False)
        self.assertEqual(original, result.text)
        self.assertEqual([], result.changes)


class TestCommand(NovaConfTestCase):
    """The sub-command, through its argparse parser, on real files."""

    def run_command(self, *argv):
        parser = argparse.ArgumentParser()
        nova_conf.add_parser(parser.add_subparsers())
        args = parser.parse_args(['nova-conf'] + list(argv))
        out, err = io.StringIO(), io.StringIO()
        status = args.func(args, out=out, err=err)
        return status, out.getvalue(), err.getvalue()

    def test_enable_then_enable_again(self):
        path = self.write('[filter_scheduler]\nenabled_filters = A\n')
        status, out, _ = self.run_command('enable', '--config-file', path)
        self.assertEqual(0, status)
        self.assertIn('added GPUPassthroughFilter', out)
        first = self.read(path)
        status, out, _ = self.run_command('enable', '--config-file', path)
        self.assertEqual(0, status)
        self.assertEqual('%s: unchanged\n' % path, out)
        self.assertEqual(first, self.read(path))
        fs = load_filter_scheduler(path)
        self.assertEqual(['A', OURS_FILTER], fs.enabled_filters)
        self.assertEqual([NOVA_WEIGHERS, OURS_WEIGHERS], fs.weight_classes)

    def test_no_weigher_flag(self):
        path = self.write('')
        self.run_command('enable', '--no-weigher', '--config-file', path)
        self.assertEqual([NOVA_WEIGHERS],
                         load_filter_scheduler(path).weight_classes)

    def test_disable(self):
        path = self.write('')
        self.run_command('enable', '--config-file', path)
        status, _, _ = self.run_command('disable', '--config-file', path)
        self.assertEqual(0, status)
        fs = load_filter_scheduler(path)
        self.assertNotIn(OURS_FILTER, fs.enabled_filters)
        self.assertNotIn(OURS_FILTERS, fs.available_filters)
        self.assertNotIn(OURS_WEIGHERS, fs.weight_classes)

    def test_dry_run_prints_a_diff_and_writes_nothing(self):
        original = '[DEFAULT]\ndebug = True\n'
        path = self.write(original)
        status, out, _ = self.run_command('enable', '--dry-run',
                                          '--config-file', path)
        self.assertEqual(0, status)
        self.assertIn('+available_filters = ' + OURS_FILTERS, out)
        self.assertEqual(original, self.read(path))

    def test_mode_and_symlink_survive(self):
        real = self.write('[DEFAULT]\n', 'real.conf')
        os.chmod(real, 0o640)
        link = os.path.join(self.dir, 'nova.conf')
        os.symlink('real.conf', link)
        self.run_command('enable', '--config-file', link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(0o640, stat.S_IMODE(os.stat(real).st_mode))
        self.assertIn(OURS_FILTERS, self.read(real))
        # No temporary file left behind.
        self.assertEqual(['nova.conf', 'real.conf'],
                         sorted(os.listdir(self.dir)))

    def test_unparsable_file_is_left_alone(self):
        original = '[filter_scheduler]\n  orphan continuation\n'
        path = self.write(original)
        status, _, err = self.run_command('enable', '--config-file', path)
        self.assertEqual(1, status)
        self.assertIn('line 2', err)
        self.assertEqual(original, self.read(path))

    def test_missing_file(self):
        status, _, err = self.run_command(
            'enable', '--config-file', os.path.join(self.dir, 'nope.conf'))
        self.assertEqual(1, status)
        self.assertIn('nope.conf', err)

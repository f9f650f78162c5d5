"""Part (d): the TensorRT tests, run by pytest, with their outcome and every skip reason.

TensorRT's wheels are far larger than what travels to the GPU machine, so there they skip with
the reason; the day TensorRT is installed the same command runs them.
"""

import os
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

from bench.gpu_check.common import PartRecord, require, run_part

REPO = Path(__file__).resolve().parents[2]


def body(plan: dict, record: PartRecord) -> None:
    """`pytest` on the TensorRT test file; counts and skip reasons from its JUnit XML."""
    test_file = plan['tensorrt']['test_file']
    work = Path(plan['work']) / 'tensorrt'
    work.mkdir(parents=True, exist_ok=True)
    junit = work / 'junit.xml'
    with record.step(f'pytest {test_file}') as entry:
        require((REPO / test_file).is_file(), f'{test_file} not found')
        done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p',
                               'no:cacheprovider', f'--junitxml={junit}', test_file],
                              cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                              timeout=max(record.left(), 10))
        print(done.stdout[-4000:], done.stderr[-2000:], sep='\n')
        require(junit.is_file(), f'pytest wrote no report (exit {done.returncode}): '
                + (done.stdout.strip().splitlines() or ['(no output)'])[-1])
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
        counts = {k: int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
        reasons = sorted({s.get('message', '') for s in suite.iter('skipped')})
        entry.update(counts, passed=counts['tests'] - counts['failures'] - counts['errors']
                     - counts['skipped'], skip_reasons=reasons, exit_code=done.returncode)
        record.row({'file': test_file, **{k: entry[k] for k in ('tests', 'passed', 'skipped',
                                                               'failures', 'errors')},
                    'skip_reasons': reasons})
        require(counts['failures'] + counts['errors'] == 0,
                f"{counts['failures']} failed, {counts['errors']} errors (see the log)")


if __name__ == '__main__':
    sys.exit(run_part('tensorrt', body))

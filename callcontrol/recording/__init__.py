"""Call recordings: which calls are recorded, where files live, and keeping files and rows true.

policy.py     the recording policy model (named policies; per queue, per flow, a step's
              override) and the once-per-call decision
paths.py      ``YYYY/MM/DD/<call-id>-<n>.wav`` under the recordings root, resolved safely, and
              the path Asterisk sees
files.py      a finished file's figures: WAV duration, size, sha256
retention.py  purge: delete what the policies' retention says has expired, mark the rows
reconcile.py  files vs rows: check, repair, and recovery of rows a crash left ``recording``
voicemail.py  voicemail messages: from Asterisk's spool into the tree
cli.py        ``callcontrol recordings check|purge``
"""

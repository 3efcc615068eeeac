"""Looking at finished runs: a run directory read into view models (`load.py`, `detail.py`), shown in
the terminal (`show.py`, `atlas show`) and as one self-contained HTML page (`html.py`, `atlas html`);
several runs compared (`compare.py`, `atlas compare`), also on that page."""

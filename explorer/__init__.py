"""The Streamlit app over ``kmnist_core``: session state and caches (``state``), the Train
form (``form``), queueing runs (``jobs``), the live run monitor (``monitor``), the Compare
view model (``compare``) and plotly figures (``charts``). Pages import this package; it
imports ``kmnist_core``; nothing imports upward."""

"""Protocol 1 (MPJPE) and 2 (PA-MPJPE), per action then averaged; reports and plots."""

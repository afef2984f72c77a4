"""Home-nurse visits: the schedule of assessments (`definitions`), nurses' hours and
delegation, free slots, booking and the visit's life cycle, and the nurse's calendar
feed."""

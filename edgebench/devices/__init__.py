"""The device inventory and the chores around it: device files, health, checks, setting a device up."""

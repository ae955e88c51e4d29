//! Records of the command line.

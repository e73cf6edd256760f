"""farm's version: a leaf module, so that the spool can record it without importing the
package above it."""

__version__ = "0.1.0"

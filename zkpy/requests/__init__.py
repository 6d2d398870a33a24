"""Requests, pure: Prep (request -> txn), Final (result -> reply) and the session tracker."""

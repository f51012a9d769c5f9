"""`dispatch.locks.driver_capacity_take`: the account's lock, the driver's lock and the capacity
UPDATE, one statement on PostgreSQL; each way it can refuse, against real row locks held by a
second connection."""

import threading

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from dispatch.locks import CapacityTaking, driver_capacity_take
from dispatch.models import Driver
from tests.factories import DriverFactory

pytestmark = pytest.mark.django_db(transaction=True)


def take(driver_id: int, *, wait_for_driver: bool = False) -> CapacityTaking:
    with transaction.atomic():
        return driver_capacity_take(driver_id, idle_since=timezone.now(), wait_for_driver=wait_for_driver)


def held_elsewhere(driver_id: int, work):
    """Run `work` while another connection holds the driver's row (as a decision does)."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                list(Driver.objects.select_for_update().filter(pk=driver_id))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        return work()
    finally:
        release.set()
        holder.join(10)


def test_a_driver_with_room_gives_a_unit():
    driver = DriverFactory(capacity=2)
    taking = take(driver.pk)
    assert (taking.is_active, taking.is_held, taking.is_taken) == (True, True, True)
    driver.refresh_from_db()
    assert driver.active_order_count == 1
    assert taking.driver is not None and (taking.driver.pk, taking.driver.active_order_count, taking.driver.vehicle) == (driver.pk, 1, driver.vehicle)


def test_a_full_driver_gives_nothing():
    driver = DriverFactory(capacity=1, active_order_count=1)
    assert take(driver.pk) == CapacityTaking(is_active=True, is_held=True, driver=None)
    driver.refresh_from_db()
    assert driver.active_order_count == 1


def test_a_deactivated_driver_gives_nothing_even_with_room():
    driver = DriverFactory(capacity=2)
    driver.user.is_active = False
    driver.user.save()
    assert take(driver.pk) == CapacityTaking(is_active=False, is_held=False, driver=None)
    driver.refresh_from_db()
    assert driver.active_order_count == 0


def test_no_such_driver():
    assert take(2**31) == CapacityTaking(is_active=None, is_held=False, driver=None)


def test_a_driver_held_by_another_transaction_is_passed_over_without_waiting():
    driver = DriverFactory(capacity=2)
    assert held_elsewhere(driver.pk, lambda: take(driver.pk, wait_for_driver=False)) == CapacityTaking(is_active=True, is_held=False, driver=None)
    driver.refresh_from_db()
    assert driver.active_order_count == 0


def test_waiting_for_a_held_driver_takes_the_unit_once_they_are_free():
    driver = DriverFactory(capacity=2)
    results = []

    def take_waiting():
        try:
            results.append(take(driver.pk, wait_for_driver=True))
        finally:
            connection.close()

    def start_waiting_then_release():
        taker = threading.Thread(target=take_waiting)
        taker.start()
        taker.join(0.5)
        assert taker.is_alive(), "the take should wait for the driver's row"
        return taker

    taker = held_elsewhere(driver.pk, start_waiting_then_release)
    taker.join(10)
    assert [(r.is_active, r.is_held, r.is_taken) for r in results] == [(True, True, True)]
    driver.refresh_from_db()
    assert driver.active_order_count == 1


def test_the_locks_are_refused_outside_a_transaction():
    driver = DriverFactory()
    with pytest.raises(TransactionManagementError):
        driver_capacity_take(driver.pk, idle_since=timezone.now(), wait_for_driver=False)

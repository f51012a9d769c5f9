"""Proof of delivery over the v2 API: real images checked with Pillow, kept without metadata,
shown to staff only; every hostile upload a clear 4xx that stores nothing."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.actors import Actor
from audit.models import AuditEvent
from proof.models import DeliveryProof
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.DISPATCH_PROOF_MAX_BYTES = 2 * 1024 * 1024


@pytest.fixture
def carrying():
    """A driver who picked up an order, and an API client with their token."""
    ZoneFactory()
    driver = DriverFactory(capacity=2)
    order = receive_order(ShopChannelFactory())
    if order.driver_id != driver.pk:
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
    return order, driver, client


def jpeg_with_gps(size=(640, 480)):
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPSInfo
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png(size=(300, 100), mode="RGBA"):
    out = io.BytesIO()
    Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else 0).save(out, format="PNG")
    return out.getvalue()


def upload(client, order, kind, data, name="proof.jpg"):
    return client.post(f"/api/v2/orders/{order.pk}/proof/{kind}/", {"file": io.BytesIO(data) if data is not None else ""}, format="multipart")


def test_a_photo_is_kept_without_its_location_and_audited(carrying):
    order, driver, client = carrying
    raw = jpeg_with_gps()
    assert Image.open(io.BytesIO(raw)).getexif().get(0x8825)  # the phone's photo says where it was taken
    response = upload(client, order, "photo", raw)
    assert response.status_code == 201, response.content
    proof = DeliveryProof.objects.get()
    assert (proof.kind, proof.content_type, proof.width, proof.height) == ("photo", "image/jpeg", 640, 480)
    with default_storage.open(proof.file.name, "rb") as stored:
        kept = Image.open(io.BytesIO(stored.read()))
    assert not kept.getexif() and "exif" not in kept.info
    event = AuditEvent.objects.get(kind="order.proof_attached")
    assert event.order_id == order.pk and set(event.data) == {"proof", "proof_kind", "sha256"}  # what, never where


def test_a_signature_keeps_its_transparency(carrying):
    order, driver, client = carrying
    response = upload(client, order, "signature", png())
    assert response.status_code == 201
    assert DeliveryProof.objects.get().content_type == "image/png"


def test_a_large_photo_is_scaled_down(carrying, settings):
    settings.DISPATCH_PROOF_MAX_SIDE_PX = 1000
    order, driver, client = carrying
    assert upload(client, order, "photo", jpeg_with_gps((3000, 1500))).status_code == 201
    proof = DeliveryProof.objects.get()
    assert (proof.width, proof.height) == (1000, 500)


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,  # a PNG's signature and nothing after it
        jpeg_with_gps()[:300],  # a truncated JPEG
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",  # a format we do not take
        None,  # no file at all
    ],
)
def test_what_is_not_a_readable_image_is_a_400_and_stores_nothing(carrying, data):
    order, driver, client = carrying
    response = upload(client, order, "photo", data)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_input"
    assert not DeliveryProof.objects.exists() and not AuditEvent.objects.filter(kind="order.proof_attached").exists()


def test_too_many_pixels_is_refused_before_decoding(carrying, settings):
    settings.DISPATCH_PROOF_MAX_PIXELS = 10_000
    order, driver, client = carrying
    response = upload(client, order, "signature", png((200, 200), mode="1"))
    assert response.status_code == 400 and "pixels" in response.json()["message"]


def test_too_many_bytes_is_refused(carrying, settings):
    settings.DISPATCH_PROOF_MAX_BYTES = 1000
    order, driver, client = carrying
    response = upload(client, order, "photo", jpeg_with_gps())
    assert response.status_code in (400, 413) and not DeliveryProof.objects.exists()


def test_another_drivers_order_does_not_exist_and_an_unpicked_order_takes_no_proof(carrying):
    order, driver, client = carrying
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=DriverFactory().user).key}")
    assert upload(stranger, order, "photo", jpeg_with_gps()).status_code == 404
    assert upload(client, order, "selfie", jpeg_with_gps()).status_code == 404
    waiting = receive_order(ShopChannelFactory(), code="WAITING")
    order_usecases.order_assign_manually(order_id=waiting.pk, driver_id=driver.pk, actor=Actor.system("test"))
    assert upload(client, waiting, "photo", jpeg_with_gps()).status_code == 409
    assert not DeliveryProof.objects.exists()
    folders = default_storage.listdir("proofs")[0] if default_storage.exists("proofs") else []
    stored = [name for folder in folders for name in default_storage.listdir(f"proofs/{folder}")[1]]
    assert stored == []  # a refused upload leaves no file behind


def test_staff_see_the_image_and_nobody_else_does(carrying, client, staff_groups):
    order, driver, api = carrying
    assert upload(api, order, "photo", jpeg_with_gps()).status_code == 201
    proof = DeliveryProof.objects.get()
    url = f"/support/proofs/{proof.pk}/"
    assert client.get(url).status_code in (302, 403)  # a visitor
    client.force_login(driver.user)
    assert client.get(url).status_code in (302, 403)  # the driver's own login is not staff
    client.force_login(staff_member("support"))
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg" and response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("group", ["support", "ops"])
def test_staff_see_the_proof_on_the_orders_page_in_admin(carrying, client, staff_groups, group):
    order, driver, api = carrying
    assert upload(api, order, "photo", jpeg_with_gps()).status_code == 201
    proof = DeliveryProof.objects.get()
    client.force_login(staff_member(group))
    page = client.get(f"/admin/dispatch/order/{order.pk}/change/").content.decode()
    assert f'src="/support/proofs/{proof.pk}/"' in page


def test_comments_and_colour_profiles_are_not_kept_either(carrying):
    order, driver, client = carrying
    photo, signature = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 64)).save(photo, format="JPEG", comment=b"Taken by Jane at 52.5N 13.4E")
    Image.new("RGBA", (64, 64)).save(signature, format="PNG", icc_profile=b"\x00" * 128)
    assert upload(client, order, "photo", photo.getvalue()).status_code == 201
    assert upload(client, order, "signature", signature.getvalue()).status_code == 201
    for proof in DeliveryProof.objects.all():
        with default_storage.open(proof.file.name, "rb") as stored:
            data = stored.read()
        kept = Image.open(io.BytesIO(data))
        assert "comment" not in kept.info and "icc_profile" not in kept.info and b"Jane" not in data, proof.kind
